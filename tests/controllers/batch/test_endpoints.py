"""Services get Endpoints of their ready pods and a unique clusterIP, also across a failover."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from hakube.api.convert import from_dict
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.controllers.clusterip import RECORD_NAME, RECORD_NS
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import set_finished, set_running
from hakube.testing.wait import wait_for
from tests.controllers.batch.objs import container, manifest

pytestmark = pytest.mark.timeout(150)


def pod(name: str, labels: dict[str, str], port: int) -> pod_pb2.Pod:
    ports = [{"name": "http", "containerPort": port}]
    p: pod_pb2.Pod = manifest("Pod", name, {"containers": [container(ports=ports)]}, labels=labels)
    return p


def service(name: str, selector: dict[str, str] | None, **spec: Any) -> core_pb2.Service:
    body = {"ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}
    if selector:
        body["selector"] = selector
    svc: core_pb2.Service = manifest("Service", name, body)
    return svc


def endpoints_of(client: Client, name: str) -> core_pb2.Endpoints | None:
    try:
        return client.endpoints.get(name)
    except errors.NotFound:
        return None


def addresses(ep: core_pb2.Endpoints | None) -> tuple[set[tuple[str, int]], set[str]]:
    """({(ready ip, port)}, {not-ready ip})."""
    if ep is None:
        return set(), set()
    ready = {(a.ip, p.port) for s in ep.subsets for a in s.addresses for p in s.ports}
    return ready, {a.ip for s in ep.subsets for a in s.not_ready_addresses}


def test_endpoints_follow_pod_readiness_and_named_ports(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "endpoints,clusterip")
    client.pods.create(pod("web-a", {"app": "web"}, 8080))
    client.pods.create(pod("web-b", {"app": "web"}, 9090))
    client.pods.create(pod("other", {"app": "db"}, 8080))
    client.services.create(service("web", {"app": "web"}))
    set_running(client, "web-a", ip="10.244.9.1")
    set_running(client, "web-b", ip="10.244.9.2", ready=False)
    set_running(client, "other", ip="10.244.9.3")

    want = ({("10.244.9.1", 8080)}, {"10.244.9.2"})
    wait_for(lambda: addresses(endpoints_of(client, "web")) == want, 20, "endpoints of web")
    ep = endpoints_of(client, "web")
    assert ep is not None
    a = ep.subsets[0].addresses[0]
    assert (a.target_ref.kind, a.target_ref.name) == ("Pod", "web-a")
    assert ep.subsets[0].ports[0].name == "web"

    set_running(client, "web-b", ready=True)  # becomes ready: named port resolves to 9090
    want = ({("10.244.9.1", 8080), ("10.244.9.2", 9090)}, set())
    wait_for(lambda: addresses(endpoints_of(client, "web")) == want, 20, "web-b ready")
    ep = endpoints_of(client, "web")
    assert ep is not None and len(ep.subsets) == 2  # different port numbers, two subsets

    set_finished(client, "web-a", exit_code=1)
    want = ({("10.244.9.2", 9090)}, set())
    wait_for(lambda: addresses(endpoints_of(client, "web")) == want, 20, "web-a gone")

    client.services.delete("web")
    wait_for(lambda: endpoints_of(client, "web") is None, 20, "endpoints deleted with service")


def test_pods_of_a_headless_service_are_listed_with_their_hostnames(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "endpoints,clusterip")
    p = pod("hl-0", {"app": "hl0"}, 5432)
    p.spec.hostname, p.spec.subdomain = "hl-0", "hl"
    client.pods.create(p)
    client.services.create(service("hl", {"app": "hl0"}, clusterIP="None"))
    set_running(client, "hl-0")
    wait_for(lambda: addresses(endpoints_of(client, "hl"))[0], 20, "hl's endpoints")
    ep = endpoints_of(client, "hl")
    assert ep is not None and ep.subsets[0].addresses[0].hostname == "hl-0"
    assert client.services.get("hl").spec.cluster_ip == "None"


def test_services_without_selector_keep_their_own_endpoints(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "endpoints,clusterip")
    client.services.create(service("manual", None))
    client.endpoints.create(
        from_dict(
            {
                "kind": "Endpoints",
                "metadata": {"name": "manual"},
                "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
            }
        )
    )
    wait_for(lambda: client.services.get("manual").spec.cluster_ip, 20, "manual's clusterIP")
    ep = endpoints_of(client, "manual")
    assert ep is not None and ep.subsets[0].addresses[0].ip == "192.0.2.1"


def cluster_ips(client: Client, names: list[str]) -> dict[str, str]:
    return {n: client.services.get(n).spec.cluster_ip for n in names}


def test_cluster_ips_are_unique_and_survive_a_failover(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "clusterip")
    managers.start("cm-b", "--controllers", "clusterip")
    names = [f"ip{i}" for i in range(6)]
    for n in names[:3]:
        client.services.create(service(n, {"app": n}))
    client.services.create(service("headless", {"app": "h"}, clusterIP="None"))
    wait_for(lambda: all(cluster_ips(client, names[:3]).values()), 20, "first clusterIPs")
    lease = client.leases.get("hakube-controller-manager", namespace="kube-system")
    managers.kill(lease.spec.holder_identity)
    for n in names[3:]:
        client.services.create(service(n, {"app": n}))
    wait_for(lambda: all(cluster_ips(client, names).values()), 30, "clusterIPs after failover")

    ips = list(cluster_ips(client, names).values())
    assert len(set(ips)) == len(ips)
    net = ipaddress.ip_network("10.96.0.0/12")
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    assert client.services.get("headless").spec.cluster_ip == "None"

    client.services.delete("ip0")  # its address goes back to the pool
    record = client.configmaps.get(RECORD_NAME, namespace=RECORD_NS)
    wait_for(
        lambda: ips[0] not in client.configmaps.get(RECORD_NAME, namespace=RECORD_NS).data,
        20,
        "ip0's address released",
    )
    assert len(record.data) >= len(ips)


def test_a_chosen_cluster_ip_is_reserved_and_a_clash_is_reported(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "clusterip")
    first = client.services.create(service("fixed", {"app": "f"}, clusterIP="10.96.200.1"))

    def holder() -> str:
        return client.configmaps.get(RECORD_NAME, namespace=RECORD_NS).data.get("10.96.200.1", "")

    wait_for(lambda: holder().endswith(first.metadata.uid), 20, "the chosen address recorded")
    client.services.create(service("clash", {"app": "c"}, clusterIP="10.96.200.1"))

    def warned() -> bool:
        return any(
            e.reason == "ClusterIPAlreadyAllocated" and e.involved_object.name == "clash"
            for e in client.events.list().items
        )

    wait_for(warned, 20, "a ClusterIPAlreadyAllocated warning on clash")
    assert holder().endswith(first.metadata.uid)
