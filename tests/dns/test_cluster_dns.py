"""``hakube dns`` against a real cluster: every answer comes from real Services, Endpoints made
by the real Endpoints controller, and pods made by the real StatefulSet controller, queried over
UDP and TCP with dnspython and dig."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import dns.message
import dns.query
import pytest

from hakube.api import convert
from hakube.client import Client
from hakube.client.config import ClientConfig, tls_settings
from hakube.client.errors import Forbidden
from hakube.local.dns import DnsAddress
from hakube.testing.cluster import LocalCluster
from hakube.testing.fakekubelet import set_running
from hakube.testing.wait import wait_for
from tests.dns.conftest import NODE, DnsInstances, answers, query

pytestmark = pytest.mark.timeout(180)


def service(ns: str, name: str, **spec: Any) -> Any:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )


def pod(ns: str, name: str, labels: dict[str, str]) -> Any:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "test/app:1"}]},
        }
    )


def fqdn(*labels: str) -> str:
    return ".".join(labels) + ".svc.cluster.local."


def test_a_service_name_resolves_to_its_cluster_ip_over_udp_and_tcp_on_every_instance(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    svc = client.services.create(
        service(ns, "web", ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
    )
    wait_for(lambda: client.services.get("web", namespace=ns).spec.cluster_ip, 10, "a ClusterIP")
    ip = client.services.get("web", namespace=ns).spec.cluster_ip
    assert svc.metadata.name == "web"
    name = fqdn("web", ns)
    for inst in (dns_procs.a, dns_procs.b):
        wait_for(lambda i=inst: answers(i, name) == {ip}, 2, f"{name} A {ip} on {inst}")
        assert answers(inst, name, tcp=True) == {ip}
    r = query(dns_procs.a, name)
    assert r.flags & 0x0400, "a cluster answer is authoritative"
    assert all(rrset.ttl == 1 for rrset in r.answer), "the --ttl of the instance"
    # A real stub resolver's view: dig over UDP and over TCP.
    for extra in ([], ["+tcp"]):
        out = subprocess.run(
            [
                "dig",
                "+short",
                "+tries=1",
                "+time=2",
                f"@{dns_procs.a.ip}",
                "-p",
                str(dns_procs.a.port),
                name,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        assert out == [ip]


def test_srv_for_named_ports_ptr_for_the_cluster_ip_and_nodata_for_other_types(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(
        service(
            ns,
            "api",
            clusterIP="10.96.77.7",
            ports=[
                {"name": "https", "port": 443, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
        )
    )
    name = fqdn("api", ns)
    a = dns_procs.a
    wait_for(lambda: answers(a, name) == {"10.96.77.7"}, 2, "the A record")
    assert answers(a, f"_https._tcp.{name}", "SRV") == {f"0 100 443 {name}"}
    assert answers(a, f"_dns._udp.{name}", "SRV") == {f"0 100 53 {name}"}
    assert answers(a, "7.77.96.10.in-addr.arpa.", "PTR") == {name}
    r = query(a, name, "AAAA")  # an IPv4 service: the name exists, without AAAA
    assert r.rcode() == 0 and not r.answer
    assert [s.rdtype for s in r.authority] == [6], "NODATA carries the zone's SOA"
    r = query(a, f"_https._udp.{name}", "SRV")
    assert r.rcode() == 3, "no such port/protocol: NXDOMAIN"


def test_unknown_cluster_names_are_nxdomain_with_the_soa_and_never_forwarded(
    dns_procs: DnsInstances, upstream: Any
) -> None:
    for name in ("nope.default.svc.cluster.local.", "ghost.nowhere.svc.cluster.local."):
        r = query(dns_procs.a, name)
        assert r.rcode() == 3, f"{name}: NXDOMAIN"
        assert [s.rdtype for s in r.authority] == [6]
        assert str(r.authority[0].name) == "cluster.local."
    # The upstream has an answer for ghost.nowhere...; it was not asked.
    r = query(DnsAddress("127.0.0.1", upstream.port), "ghost.nowhere.svc.cluster.local.")
    assert r.answer, "the upstream really has that name"


def test_other_names_are_forwarded_upstream_or_fail_fast_without_one(
    dns_procs: DnsInstances, tmp_path: Any
) -> None:
    assert answers(dns_procs.a, "outside.example.") == {"192.0.2.7"}
    assert answers(dns_procs.a, "outside.example.", tcp=True) == {"192.0.2.7"}
    started = time.monotonic()
    r = query(dns_procs.b, "outside.example.")
    assert r.rcode() == 2 and time.monotonic() - started < 2.0, "no upstream: SERVFAIL, fast"
    # An upstream that never answers (a bound socket nobody reads): SERVFAIL within 2 s.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        c = dns_procs.start("dns-silent", "--upstream", f"127.0.0.1:{silent.getsockname()[1]}")
        try:
            started = time.monotonic()
            r = query(c, "outside.example.", timeout=5)
            took = time.monotonic() - started
            assert r.rcode() == 2 and took < 2.0, f"SERVFAIL after {took:.2f}s"
        finally:
            dns_procs.local.supervisor.kill("dns-silent")


def test_a_headless_service_lists_ready_pods_only_and_drops_one_that_turns_unready(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(
        service(
            ns,
            "db",
            clusterIP="None",
            selector={"app": "db"},
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
        )
    )
    for i in range(3):
        client.pods.create(pod(ns, f"db-{i}", {"app": "db"}))

    def ips() -> dict[str, str]:
        pods = client.pods.list(namespace=ns).items
        return {p.metadata.name: p.status.pod_ip for p in pods if p.status.pod_ip}

    wait_for(lambda: len(ips()) == 3, 15, "three running pods")
    name = fqdn("db", ns)
    a = dns_procs.a
    wait_for(lambda: answers(a, name) == set(ips().values()), 5, "three A records")
    unready = ips()["db-1"]
    dashed = unready.replace(".", "-")
    assert answers(a, f"{dashed}.{name}") == {unready}, "an endpoint without hostname: dashed"
    assert answers(a, f"_pg._tcp.{name}", "SRV") == {
        f"0 100 5432 {ip.replace('.', '-')}.{name}" for ip in ips().values()
    }
    rev = ".".join(reversed(unready.split("."))) + ".in-addr.arpa."
    assert answers(a, rev, "PTR") == {f"{dashed}.{name}"}

    set_running(client, "db-1", ns, ip=unready, ready=False)
    started = time.monotonic()
    want = {ip for n, ip in ips().items() if n != "db-1"}
    wait_for(lambda: answers(a, name) == want, 3, "the unready pod gone from the answer")
    took = time.monotonic() - started
    assert took < 2.5, f"took {took:.2f}s"
    assert query(a, f"{dashed}.{name}").rcode() == 3
    wait_for(lambda: answers(dns_procs.b, name) == want, 3, "the other instance agrees")


def test_statefulset_pods_get_their_own_names_under_the_governing_service(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(
        service(
            ns,
            "kv",
            clusterIP="None",
            selector={"app": "kv"},
            ports=[{"name": "peer", "port": 2380, "protocol": "TCP"}],
        )
    )
    client.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "kv", "namespace": ns},
            "spec": {
                "serviceName": "kv",
                "replicas": 2,
                "selector": {"matchLabels": {"app": "kv"}},
                "template": {
                    "metadata": {"labels": {"app": "kv"}},
                    "spec": {"containers": [{"name": "c", "image": "test/kv:1"}]},
                },
            },
        }
    )

    def pod_ip(name: str) -> str:
        try:
            return str(client.pods.get(name, namespace=ns).status.pod_ip)
        except Exception:
            return ""

    wait_for(lambda: pod_ip("kv-0") and pod_ip("kv-1"), 30, "kv-0 and kv-1 running")
    name = fqdn("kv", ns)
    for i in range(2):
        ip = pod_ip(f"kv-{i}")
        wait_for(lambda n=f"kv-{i}.{name}", ip=ip: answers(dns_procs.a, n) == {ip}, 5, f"kv-{i}")
    assert answers(dns_procs.a, f"_peer._tcp.{name}", "SRV") == {
        f"0 100 2380 kv-{i}.{name}" for i in range(2)
    }


def test_creating_and_deleting_a_service_changes_the_answers_within_two_seconds(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    name = fqdn("late", ns)
    assert query(dns_procs.b, name).rcode() == 3
    client.services.create(
        service(ns, "late", clusterIP="10.96.77.8", ports=[{"port": 80, "protocol": "TCP"}])
    )
    started = time.monotonic()
    wait_for(lambda: answers(dns_procs.b, name) == {"10.96.77.8"}, 2, "the new service answered")
    client.services.delete("late", namespace=ns)
    wait_for(lambda: query(dns_procs.b, name).rcode() == 3, 2, "the deleted service is NXDOMAIN")
    assert time.monotonic() - started < 4


def test_an_externalname_service_is_a_cname(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(service(ns, "ext", type="ExternalName", externalName="outside.example"))
    name = fqdn("ext", ns)
    wait_for(lambda: answers(dns_procs.a, name, "CNAME") == {"outside.example."}, 2, "CNAME")


def test_large_answers_are_truncated_over_udp_and_complete_over_tcp(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(
        service(ns, "big", clusterIP="None", ports=[{"name": "p", "port": 1, "protocol": "TCP"}])
    )
    eps = convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "big", "namespace": ns},
            "subsets": [{"addresses": [{"ip": f"10.244.9.{i}"} for i in range(1, 101)]}],
        }
    )
    client.endpoints.create(eps)
    name = fqdn("big", ns)
    wait_for(lambda: len(answers(dns_procs.b, name, tcp=True) or ()) == 100, 3, "100 addresses")
    q = dns.message.make_query(name, "A", use_edns=False)
    r = dns.query.udp(q, "127.0.0.1", port=dns_procs.b.port, timeout=2)
    assert r.flags & 0x0200, "TC set: the answer does not fit 512 bytes"


def test_metrics_count_queries_by_type_and_rcode(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    client.services.create(
        service(ns, "counted", clusterIP="10.96.77.11", ports=[{"port": 80, "protocol": "TCP"}])
    )
    name = fqdn("counted", ns)
    wait_for(lambda: answers(dns_procs.a, name) == {"10.96.77.11"}, 3, "the service answered")
    query(dns_procs.a, "nope.default.svc.cluster.local.", "AAAA")
    query(dns_procs.a, "outside.example.", "A")
    url = f"http://127.0.0.1:{dns_procs.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert re.search(
        r'hakube_dns_queries_total\{proto="udp",rcode="NXDOMAIN",type="AAAA"\} [1-9]', text
    )
    assert "hakube_dns_request_duration_seconds_bucket" in text
    assert re.search(r'hakube_dns_forwards_total\{result="ok"\} [1-9]', text)
    assert re.search(r"hakube_dns_zone_services [1-9]", text)


def test_the_dns_identity_may_read_services_and_endpoints_and_nothing_else(
    cluster: LocalCluster, dns_procs: DnsInstances, ns: str
) -> None:
    creds = ClientConfig(
        servers=cluster.endpoints(), tls=tls_settings(cluster.pki.user_tls("dns"))
    ).credentials()
    with Client(cluster.endpoints(), credentials=creds, timeout=10) as c:
        c.services.list(namespace=ns)
        c.endpoints.list()
        attacks = {
            "list secrets": lambda: c.secrets.list(namespace="kube-system"),
            "get a secret": lambda: c.secrets.get("any", namespace=ns),
            "create a secret": lambda: c.secrets.create(
                convert.from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "x", "namespace": ns},
                    }
                )
            ),
            "create a service": lambda: c.services.create(
                service(ns, "evil", ports=[{"port": 1, "protocol": "TCP"}])
            ),
            "rewrite kube-dns endpoints": lambda: c.endpoints.create(
                convert.from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "Endpoints",
                        "metadata": {"name": "evil", "namespace": ns},
                    }
                )
            ),
            "list pods": lambda: c.pods.list(namespace=ns),
        }
        for what, attack in attacks.items():
            with pytest.raises(Forbidden):
                attack()
                pytest.fail(f"the dns identity could {what}")


def test_with_two_instances_killing_one_leaves_the_other_answering_new_changes(
    client: Client, dns_procs: DnsInstances, ns: str
) -> None:
    one = dns_procs.start("dns-ha-1", "--upstream", "none")
    two = dns_procs.start("dns-ha-2", "--upstream", "none")
    client.services.create(
        service(ns, "ha", clusterIP="10.96.77.9", ports=[{"port": 80, "protocol": "TCP"}])
    )
    name = fqdn("ha", ns)
    for inst in (one, two):
        wait_for(lambda i=inst: answers(i, name) == {"10.96.77.9"}, 3, "both answer")
    dns_procs.local.supervisor.kill("dns-ha-1")
    assert answers(one, name) is None, "the killed instance is gone"
    client.services.create(
        service(ns, "ha2", clusterIP="10.96.77.10", ports=[{"port": 80, "protocol": "TCP"}])
    )
    wait_for(lambda: answers(two, fqdn("ha2", ns)) == {"10.96.77.10"}, 2, "the survivor follows")
    assert answers(two, name) == {"10.96.77.9"}
    dns_procs.local.supervisor.kill("dns-ha-2")


def test_port_zero_and_a_busy_port_are_handled(dns_procs: DnsInstances) -> None:
    port = dns_procs.a.port
    busy = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube",
            "dns",
            "--servers",
            "127.0.0.1:1",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "hakube", "dns", "--listen", "localhost:53"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--listen 'localhost:53'" in bad.stderr
