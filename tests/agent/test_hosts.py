"""The pod's managed /etc/hosts (hakube.agent.hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hakube.agent import hosts
from hakube.api import convert


def pod(**spec: Any) -> Any:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}], **spec},
        }
    )


def lines(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_a_pod_network_pod_knows_its_own_names_and_its_aliases() -> None:
    p = pod(
        hostname="kv-0",
        subdomain="kv",
        hostAliases=[{"ip": "192.0.2.5", "hostnames": ["db.local", "db"]}],
    )
    got = lines(hosts.content(p, "10.244.1.7", host_network=False, domain="cluster.local"))
    assert got[0] == ["127.0.0.1", "localhost"]
    assert ["10.244.1.7", "kv-0.kv.shop.svc.cluster.local", "kv-0"] in got
    assert got[-1] == ["192.0.2.5", "db.local", "db"]
    plain = lines(hosts.content(pod(), "10.244.1.8", host_network=False, domain="cluster.local"))
    assert plain[-1] == ["10.244.1.8", "web-1"]


def test_a_host_network_pod_gets_the_nodes_file_plus_its_aliases() -> None:
    p = pod(hostNetwork=True, hostAliases=[{"ip": "192.0.2.6", "hostnames": ["x"]}])
    text = hosts.content(
        p, "192.0.2.1", host_network=True, domain="cluster.local", node_hosts="127.0.0.1 node"
    )
    assert lines(text) == [["127.0.0.1", "node"], ["192.0.2.6", "x"]]


def test_a_container_mounting_its_own_etc_hosts_keeps_it(tmp_path: Path) -> None:
    path = str(tmp_path / "etc-hosts")
    hosts.write(path, "127.0.0.1 localhost\n")
    assert (tmp_path / "etc-hosts").stat().st_mode & 0o777 == 0o644
    c = pod().spec.containers[0]
    assert [m.container_path for m in hosts.mount(c, path)] == ["/etc/hosts"]
    c.volume_mounts.add(name="h", mount_path="/etc/hosts")
    assert hosts.mount(c, path) == []
