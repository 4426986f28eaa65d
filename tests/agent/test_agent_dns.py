"""Pods' /etc/resolv.conf on real containerd follows their dnsPolicy: the agent hands it to the
runtime as the sandbox's CRI DNSConfig (hakube.api.poddns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE
from hakube.testing.wait import wait_for
from tests.agent.conftest import StartAgent, ctl, make_pod

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]


def test_each_pod_gets_the_resolv_conf_of_its_dns_policy(
    cluster: LocalCluster, client: Client, start_agent: StartAgent, tmp_path: Path
) -> None:
    node_resolv = tmp_path / "node-resolv.conf"
    node_resolv.write_text("nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n")
    agent = start_agent(
        extra=[
            "--cluster-dns",
            "10.96.0.10",
            "--cluster-domain",
            "cluster.local",
            "--resolv-conf",
            str(node_resolv),
        ]
    )
    show = "cat /etc/resolv.conf; echo ---; cat /etc/hosts"
    cat = [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", show]}]
    specs = {
        "dns-cluster-first": {
            "hostname": "kv-0",
            "subdomain": "kv",
            "hostAliases": [{"ip": "192.0.2.5", "hostnames": ["db.local", "db"]}],
        },
        "dns-default": {"dnsPolicy": "Default"},
        "dns-none": {
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["192.0.2.99"],
                "searches": ["only.example"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}],
            },
        },
    }
    for name, spec in specs.items():
        client.pods.create(make_pod(name, agent.node, cat, restartPolicy="Never", **spec))

    def resolv(name: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in ctl(cluster, "logs", name)[1].split("---")[0].splitlines():
            words = line.split()
            if words and words[0] in ("nameserver", "search", "options"):
                out.setdefault(words[0], []).extend(words[1:])
        return out

    for name in specs:
        wait_for(lambda n=name: "nameserver" in resolv(n), 60, f"{name}'s resolv.conf")
    assert resolv("dns-cluster-first") == {
        "nameserver": ["10.96.0.10"],
        "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": ["ndots:5"],
    }
    assert resolv("dns-default") == {
        "nameserver": ["192.0.2.53"],
        "search": ["corp.example"],
        "options": ["timeout:2"],
    }
    assert resolv("dns-none") == {
        "nameserver": ["192.0.2.99"],
        "search": ["only.example"],
        "options": ["ndots:1", "edns0"],
    }

    # /etc/hosts: managed by the agent: loopback, the pod's own names, then hostAliases.
    def hosts(name: str) -> list[list[str]]:
        text = ctl(cluster, "logs", name)[1].split("---", 1)[1]
        return [line.split() for line in text.splitlines() if line and not line.startswith("#")]

    # This agent has no pod network, so its pods share the node's network and, as host-network
    # pods do, the node's /etc/hosts; a pod-network pod's own lines: tests/agent/test_hosts.py.
    lines = hosts("dns-cluster-first")
    with open("/etc/hosts") as f:
        node = [ln.split() for ln in f.read().splitlines() if ln and not ln.startswith("#")]
    assert lines == [*node, ["192.0.2.5", "db.local", "db"]], lines
