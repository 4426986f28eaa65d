"""Pod address ranges: the nodeipam controller gives each Node a podCIDR from the cluster CIDR,
never the same one twice (Nodes registered all at once, the leader killed in the middle),
keeps ranges Nodes came with, releases a deleted Node's range, and reports a full range with
an Event instead of failing."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import threading

import pytest

from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import Client, errors
from hakube.controllers.nodeipam import RECORD_NAME, RECORD_NS, lowest_free, plan
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for
from tests.controllers.test_deployment_failover import holder

CLUSTER_CIDR = "10.250.0.0/20"  # 16 ranges of /24
FLAGS = ["--controllers", "nodeipam", "--cluster-cidr", CLUSTER_CIDR, "--node-cidr-mask-size", "24"]


def test_the_lowest_free_range_skips_taken_ones_of_any_size() -> None:
    net = ipaddress.ip_network("10.1.0.0/22")
    taken = [ipaddress.ip_network("10.1.0.0/24"), ipaddress.ip_network("10.1.1.128/25")]
    assert str(lowest_free(net, 24, taken)) == "10.1.2.0/24"
    taken.append(ipaddress.ip_network("10.1.2.0/23"))
    assert lowest_free(net, 24, taken) is None


def test_overlapping_service_and_cluster_cidrs_are_refused_with_the_flags_named() -> None:
    with pytest.raises(ValueError, match="--cluster-cidr 10.96.0.0/16 overlaps the Service CIDR"):
        plan("10.96.0.0/16", 24, "10.96.0.0/12")
    with pytest.raises(ValueError, match="--node-cidr-mask-size 8"):
        plan("10.244.0.0/16", 8, "10.96.0.0/12")
    res = subprocess.run(
        [sys.executable, "-m", "hakube", "controller-manager", "--servers", "127.0.0.1:1"]
        + ["--cluster-cidr", "10.100.0.0/16"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert "overlaps the Service CIDR 10.96.0.0/12" in res.stderr.strip().splitlines()[-1]


def _node(name: str, pod_cidr: str = "") -> core_pb2.Node:
    node = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name))
    if pod_cidr:
        node.spec.pod_cidr = pod_cidr
    return node


def _cidrs(client: Client, prefix: str) -> dict[str, str]:
    return {
        n.metadata.name: n.spec.pod_cidr
        for n in client.nodes.list().items
        if n.metadata.name.startswith(prefix)
    }


def _all_allocated(client: Client, prefix: str, n: int) -> bool:
    got = _cidrs(client, prefix)
    return len(got) == n and all(got.values())


@pytest.mark.timeout(150)
def test_nodes_get_distinct_ranges_through_a_leader_change_and_a_full_range(
    cluster: LocalCluster, client: Client, managers: ComponentProcs
) -> None:
    # A Node that brought its own range (hakube agent --pod-cidr) keeps it; nobody gets it.
    client.nodes.create(_node("ipam-given", "10.250.0.0/24"))
    managers.start("ipam-a", *FLAGS)
    wait_for(lambda: holder(client) == "ipam-a", 20, "ipam-a to lead")
    managers.start("ipam-b", *FLAGS)
    # 14 Nodes at once, and the leader killed while they are being given ranges.
    names = [f"ipam-{i:02d}" for i in range(14)]
    threads = [threading.Thread(target=client.nodes.create, args=(_node(n),)) for n in names]
    for t in threads:
        t.start()
    wait_for(lambda: sum(bool(c) for c in _cidrs(client, "ipam-").values()) >= 4, 30, "some")
    managers.kill("ipam-a")
    for t in threads:
        t.join(30)
    wait_for(lambda: _all_allocated(client, "ipam-", 15), 40, "every node a podCIDR")
    got = _cidrs(client, "ipam-")
    assert got["ipam-given"] == "10.250.0.0/24"
    assert len(set(got.values())) == 15, got
    net = ipaddress.ip_network(CLUSTER_CIDR)
    assert all(ipaddress.ip_network(c).subnet_of(net) for c in got.values())  # type: ignore[arg-type]
    assert holder(client) == "ipam-b"
    record = client.configmaps.get(RECORD_NAME, namespace=RECORD_NS).data
    assert sorted(k.replace("_", "/") for k in record) == sorted(got.values())

    # The 16th range is the last; a 17th Node waits with an Event naming the cause.
    client.nodes.create(_node("ipam-last"))
    wait_for(lambda: _all_allocated(client, "ipam-", 16), 20, "the last range given")
    full = client.nodes.create(_node("ipam-over"))

    def full_event() -> bool:
        return any(
            e.reason == "CIDRNotAvailable" and e.involved_object.uid == full.metadata.uid
            for e in client.events.list(namespace="default").items
        )

    wait_for(full_event, 20, "a CIDRNotAvailable event on ipam-over", interval=0.2)
    assert not client.nodes.get("ipam-over").spec.pod_cidr
    assert "no free /24 left" in managers.log("ipam-b")

    # Deleting a Node frees its range, and the waiting Node gets it.
    freed = got["ipam-05"]
    client.nodes.delete("ipam-05")
    wait_for(
        lambda: client.nodes.get("ipam-over").spec.pod_cidr == freed, 20, "the freed range reused"
    )
    got = _cidrs(client, "ipam-")
    assert len(set(got.values())) == len(got) == 16

    # A podCIDR is immutable once set.
    node = client.nodes.get("ipam-over")
    node.spec.pod_cidr = "10.250.15.0/24"
    del node.spec.pod_cidrs[:]
    with pytest.raises(errors.Invalid, match="spec.podCIDR: field is immutable"):
        client.nodes.update(node)
    for name in got:
        client.nodes.delete(name)
