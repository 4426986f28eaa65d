"""The rule-set generator: what a Service and its Endpoints become, and incremental diffs.

The text checks pin the layout documented in docs/networking.md; the kernel checks apply the
transactions with the real ``nft`` in a namespace of their own and compare what the kernel
holds, so a diff that nft would refuse, or that drifts from a full rebuild, fails here.
"""

from __future__ import annotations

import subprocess

import pytest

from hakube.api import convert
from hakube.api.v1 import core_pb2
from hakube.proxy import nft
from hakube.proxy.rules import (
    HAIRPIN,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    Builder,
    Endpoint,
    ServicePort,
    build,
    ep_chain,
    ext_chain,
    service_ports,
    svc_chain,
)
from hakube.testing import nsthread
from hakube.testing.proxylab import normalised


def _svc(**spec: object) -> core_pb2.Service:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}], **spec},
    }
    svc: core_pb2.Service = convert.from_dict(manifest)  # type: ignore[assignment]
    return svc


def _eps(
    *ips: str, port: int = 8080, name: str = "http", not_ready: tuple[str, ...] = ()
) -> core_pb2.Endpoints:
    ep: core_pb2.Endpoints = convert.from_dict(  # type: ignore[assignment]
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "demo"},
            "subsets": [
                {
                    "addresses": [{"ip": i} for i in ips],
                    "notReadyAddresses": [{"ip": i} for i in not_ready],
                    "ports": [{"name": name, "port": port, "protocol": "TCP"}],
                }
            ],
        }
    )
    return ep


def _port(*ips: str, **kw: object) -> ServicePort:
    args: dict = dict(
        namespace="demo",
        name="web",
        port_name="http",
        protocol="tcp",
        cluster_ip="10.96.0.20",
        port=80,
        endpoints=tuple(Endpoint(i, 8080) for i in ips),
    )
    args.update(kw)
    return ServicePort(**args)


def test_a_service_port_takes_only_ready_endpoints_of_its_named_port() -> None:
    (sp,) = service_ports(_svc(), _eps("10.244.0.3", "10.244.0.2", not_ready=("10.244.0.9",)))
    assert sp.key == "demo/web/tcp/http"
    assert sp.endpoints == (Endpoint("10.244.0.2", 8080), Endpoint("10.244.0.3", 8080))
    (other,) = service_ports(_svc(), _eps("10.244.0.2", name="metrics"))
    assert other.endpoints == ()


def test_headless_externalname_and_unallocated_services_program_nothing() -> None:
    assert service_ports(_svc(clusterIP="None"), None) == []
    assert service_ports(_svc(clusterIP=""), None) == []
    assert service_ports(_svc(type="ExternalName", externalName="x.example"), None) == []


def test_node_port_counts_only_for_nodeport_services() -> None:
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    (np,) = service_ports(_svc(type="NodePort", ports=ports), None)
    (cip,) = service_ports(_svc(ports=ports), None)
    assert (np.node_port, cip.node_port) == (30080, 0)


def test_endpoints_are_picked_at_random_and_dnat_with_hairpin_masquerade() -> None:
    sp = _port("10.244.0.2", "10.244.0.3")
    rs = build([sp])
    assert rs.chains == {
        svc_chain(sp): (
            "meta l4proto tcp dnat ip to numgen random mod 2 "
            "map { 0 : 10.244.0.2 . 8080, 1 : 10.244.0.3 . 8080 }",
        )
    }
    assert rs.elements[SERVICE_IPS] == {"10.96.0.20 . tcp . 80": f"goto {svc_chain(sp)}"}
    assert rs.elements[HAIRPIN] == {"10.244.0.2 . 10.244.0.2": "", "10.244.0.3 . 10.244.0.3": ""}
    assert rs.elements[NO_ENDPOINT_SERVICES] == {}
    assert (rs.service_ports, rs.endpoints, rs.rule_count()) == (1, 2, 1)


def test_a_service_without_endpoints_is_rejected_on_its_clusterip_and_nodeport() -> None:
    rs = build([_port(node_port=30080)])
    assert rs.elements[SERVICE_IPS] == {} and rs.elements[SERVICE_NODEPORTS] == {}
    assert rs.elements[NO_ENDPOINT_SERVICES] == {"10.96.0.20 . tcp . 80": "goto reject-chain"}
    assert rs.elements[NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "goto reject-chain"}


def test_nodeport_and_cluster_cidr_mark_for_masquerade() -> None:
    sp = _port("10.244.0.2", node_port=30080)
    rs = build([sp], cluster_cidr="10.244.0.0/16")
    assert rs.chains[ext_chain(sp)] == ("jump mark-for-masquerade", f"goto {svc_chain(sp)}")
    assert rs.chains[svc_chain(sp)][0] == (
        "ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    )
    assert rs.elements[SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {ext_chain(sp)}"}


def test_client_ip_affinity_remembers_the_client_per_endpoint() -> None:
    sp = _port("10.244.0.2", affinity=True)
    rs = build([sp])
    (aff,) = rs.sets
    chain = ep_chain(sp, sp.endpoints[0])
    assert rs.chains[svc_chain(sp)][0] == f"ip saddr @{aff} goto {chain}"
    assert f"update @{aff} {{ ip saddr }}" in rs.chains[chain]


def test_two_services_claiming_one_address_do_not_break_the_table() -> None:
    rs = build([_port("10.244.0.2"), _port("10.244.0.3", name="web2")])
    assert rs.service_ports == 1
    assert list(rs.elements[SERVICE_IPS].values()) == [f"goto {svc_chain(_port())}"]


def test_an_endpoint_change_rewrites_only_that_service() -> None:
    other = _port("10.244.1.5", name="api", cluster_ip="10.96.0.30")
    old = build([_port("10.244.0.2"), other])
    sp = _port("10.244.0.2", "10.244.0.3")
    lines = nft.diff("t", old, build([sp, other])).splitlines()
    assert lines == [
        f"flush chain ip t {svc_chain(sp)}",
        f"add rule ip t {svc_chain(sp)} {build([sp]).chains[svc_chain(sp)][0]}",
        "add element ip t hairpin-endpoints { 10.244.0.3 . 10.244.0.3 }",
    ]
    assert nft.diff("t", old, build([_port("10.244.0.2"), other])) == ""


def test_the_builder_reuses_fragments_of_unchanged_service_ports() -> None:
    b = Builder()
    sp = _port("10.244.0.2")
    b.build([sp])
    first = b._cache[sp]
    b.build([sp, _port(name="x", cluster_ip="10.96.0.31")])
    assert b._cache[sp] is first


# -- with the kernel ------------------------------------------------------------------------


def _apply(ns: str, text: str) -> None:
    nsthread.call_in(ns, nft.apply, text)


def _kernel(ns: str, table: str) -> dict:
    return normalised(nsthread.call_in(ns, nft.list_table, table))


SCENARIO = [
    [_port("10.244.0.2")],
    [_port("10.244.0.2", "10.244.0.3", node_port=30080)],
    [_port(node_port=30080), _port("10.244.2.2", name="dns", protocol="udp", port=53)],
    [_port("10.244.0.4", affinity=True), _port("10.244.2.2", name="dns", protocol="udp", port=53)],
    [_port("10.244.0.4", "10.244.0.5")],
    [],
]


def test_incremental_syncs_leave_the_kernel_as_a_full_sync_would(netns: str) -> None:
    table = "hkpx-test"
    b = Builder(cluster_cidr="10.244.0.0/16")
    applied = b.build([])
    _apply(netns, nft.full(table, applied))
    for step in SCENARIO:
        want = b.build(step)
        _apply(netns, nft.diff(table, applied, want))
        applied = want
        got = _kernel(netns, table)
        _apply(netns, nft.full(table, build(step, cluster_cidr="10.244.0.0/16")))
        assert _kernel(netns, table) == got, step


def test_a_full_sync_replaces_the_table_without_duplicates(netns: str) -> None:
    table = "hkpx-test"
    text = nft.full(table, build(SCENARIO[1]))
    _apply(netns, text)
    first = _kernel(netns, table)
    _apply(netns, text)
    assert _kernel(netns, table) == first
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "table", "ip", table],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("numgen random mod 2") == 1


def test_a_refused_transaction_changes_nothing(netns: str) -> None:
    table = "hkpx-test"
    _apply(netns, nft.full(table, build(SCENARIO[1])))
    before = _kernel(netns, table)
    with pytest.raises(nft.NftError, match="nft -f"):
        _apply(netns, f"flush chain ip {table} services\nadd rule ip {table} nosuch accept\n")
    assert _kernel(netns, table) == before


def test_a_full_sync_over_an_existing_table_keeps_affinity_and_drops_the_rest(netns: str) -> None:
    table = "hkpx-test"
    _apply(netns, nft.full(table, build(SCENARIO[1])))
    existing = nsthread.call_in(netns, nft.list_table, table)
    _apply(netns, nft.full(table, build(SCENARIO[3]), existing))  # over a different table
    got = _kernel(netns, table)
    _apply(netns, nft.full(table, build(SCENARIO[3])))  # from scratch
    assert _kernel(netns, table) == got
    (aff,) = build(SCENARIO[3]).sets
    _apply(netns, f"add element ip {table} {aff} {{ 10.244.9.9 }}\n")  # a remembered client
    existing = nsthread.call_in(netns, nft.list_table, table)
    _apply(netns, nft.full(table, build(SCENARIO[3]), existing))
    assert "10.244.9.9" in str(_kernel(netns, table)[f"set {aff}"]["elem"])
    assert nsthread.call_in(netns, nft.list_table, "hkpx-none") is None


def test_a_full_sync_keeps_the_learnt_nat_backends_and_untracking_can_be_turned_off(
    netns: str,
) -> None:
    table = "hkpx-test"
    cidr = "10.244.0.0/16"
    _apply(netns, nft.full(table, build(SCENARIO[1]), untracked=cidr))
    raw = _kernel(netns, table)[f"chain {nft.RAW_CHAIN}"]
    assert "notrack" in str(raw) and cidr.split("/")[0] in str(raw)
    backend = "10.244.0.2 . tcp . 8080"  # as the learn chain adds one: a live DNAT backend
    _apply(netns, f"add element ip {table} {nft.NAT_BACKENDS} {{ {backend} }}\n")
    existing = nsthread.call_in(netns, nft.list_table, table)
    _apply(netns, nft.full(table, build(SCENARIO[3]), existing, untracked=cidr))
    listed = ["ip", "netns", "exec", netns, "nft", "list", "set", "ip", table, nft.NAT_BACKENDS]
    assert (
        "10.244.0.2 . tcp . 8080" in subprocess.run(listed, capture_output=True, text=True).stdout
    )
    existing = nsthread.call_in(netns, nft.list_table, table)
    _apply(netns, nft.full(table, build(SCENARIO[3]), existing))  # --no-untrack-pod-traffic
    got = _kernel(netns, table)
    assert not [k for k in got if nft.NAT_BACKENDS in k or nft.RAW_CHAIN in k or "learn" in k]
    _apply(netns, nft.full(table, build(SCENARIO[3])))
    assert _kernel(netns, table) == got
