"""The agents ``hakube up --nodes M`` runs: with containerd, one machine has one containerd and
one CNI directory, so only node-1 builds the pod network (from its allocated podCIDR)."""

from __future__ import annotations

from hakube.local.agents import LocalAgents


def _flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_only_the_first_local_containerd_node_builds_the_pod_network(tmp_path: object) -> None:
    agents = LocalAgents(str(tmp_path), ["127.0.0.1:1"], runtime="containerd")
    first, second = agents.command("node-1", 1), agents.command("node-2", 2)
    assert _flag(first, "--pod-network") is None and _flag(first, "--pod-cidr") is None
    assert _flag(second, "--pod-network") == "host"


def test_simulated_nodes_get_their_own_ranges_without_an_allocator(tmp_path: object) -> None:
    agents = LocalAgents(str(tmp_path), ["127.0.0.1:1"])
    assert _flag(agents.command("node-2", 2), "--pod-cidr") == "10.244.2.0/24"
