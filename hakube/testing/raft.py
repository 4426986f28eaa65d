"""Raft members in one process, each with its own pysyncobj thread, on loopback: the store's
test harness (the multi-process one is hakube.testing.cluster)."""

from __future__ import annotations

import os
from typing import Any

from hakube.local.cluster import free_ports
from hakube.pki.layout import Pki
from hakube.pki.tls import TlsFiles
from hakube.store.fsm import StoreFSM
from hakube.store.raft import RaftNode, RaftSettings
from hakube.testing.wait import wait_for


def member_tls(pki_dir: str, name: str) -> TlsFiles:
    """TLS files for master ``name`` from the PKI in ``pki_dir`` (made on first use)."""
    pki = Pki(pki_dir)
    if not os.path.exists(pki.master_cert(name)):
        pki.init({name: ["127.0.0.1"]})
    return pki.master_tls(name)


class InProcessCluster:
    """Raft members in this process (each with its own pysyncobj thread) on loopback."""

    def __init__(self, base: str, n: int, **settings: object) -> None:
        ports = free_ports(n)
        self.addrs = {f"r{i}": f"127.0.0.1:{p}" for i, p in enumerate(ports)}
        self.base = base
        self.settings = settings
        self.pki = Pki(os.path.join(base, "pki"))
        self.pki.init({name: ["127.0.0.1"] for name in self.addrs})
        self.nodes: dict[str, RaftNode] = {}

    def start(self, name: str) -> RaftNode:
        peers = {k: v for k, v in self.addrs.items() if k != name}
        node = RaftNode(
            RaftSettings(
                name=name,
                raft_address=self.addrs[name],
                peers=peers,
                data_dir=f"{self.base}/{name}",
                tls=self.tls(name),
                **self.settings,  # type: ignore[arg-type]
            ),
            StoreFSM(),
        )
        self.nodes[name] = node
        return node

    def tls(self, name: str) -> TlsFiles:
        """Member ``name``'s TLS files (issued on first use, so tests can add members)."""
        if not os.path.exists(self.pki.master_cert(name)):
            self.pki.issue_master(self.pki.load_ca(), name, ["127.0.0.1"])
        return self.pki.master_tls(name)

    def stop(self, name: str) -> None:
        node = self.nodes.pop(name)
        node.stop()
        wait_for(lambda: not node.syncobj.tick_thread_alive(), 10, f"{name} to stop")

    def leader(self, timeout: float = 15) -> RaftNode:
        wait_for(
            lambda: (
                any(n.is_leader() for n in self.nodes.values())
                and all(n.has_quorum() for n in self.nodes.values())
            ),
            timeout,
            "a leader",
        )
        return next(n for n in self.nodes.values() if n.is_leader())

    def restart_all_and_expect(self, kind: str, count: int, timeout: float = 20) -> None:
        """Stop every member, start them all again, and wait until each replica holds
        ``count`` objects of ``kind`` (at a revision of at least ``count``)."""
        for name in list(self.nodes):
            self.stop(name)
        for name in self.addrs:
            self.start(name)
        self.leader()
        for node in self.nodes.values():
            wait_for(lambda n=node: n.fsm.revision >= count, timeout, "state to come back")  # type: ignore[misc]
            assert node.fsm.count(kind) == count


class Cut:
    """Drop every Raft message to and from one member while its TCP connections stay up (as
    when packets are dropped on the way): pysyncobj goes on believing it is connected."""

    def __init__(self, c: InProcessCluster, victim: str) -> None:
        self.saved: dict[str, Any] = {}
        addr = c.addrs[victim]
        for name, node in c.nodes.items():
            transport = node.syncobj._SyncObj__transport  # type: ignore[attr-defined]
            original = transport.send
            self.saved[name] = (transport, original)

            def send(
                n: Any, msg: Any, original: Any = original, alone: bool = name == victim
            ) -> bool:
                if alone or n.address == addr:
                    return True  # "sent", never delivered
                return bool(original(n, msg))

            transport.send = send

    def heal(self) -> None:
        for transport, original in self.saved.values():
            transport.send = original
