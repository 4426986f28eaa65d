"""Faults for a cluster of masters on netns hosts: partitions, packet loss, kill -9 and restart,
SIGSTOP pauses. Every fault is undone by ``heal``.

``disk-full`` (only when a master's data directory is a tmpfs of its own) fills it with a ballast
file until writes fail with ENOSPC; the heal removes it and restarts a master that died of it.

``power-cut`` (one master), ``power-cut-leader``, ``power-cut-majority`` and ``power-cut-all``
(only when the masters' data directories are lazy file systems, hakube/testing/lazyfs) kill the
masters and drop everything their disks had not synced, as a loss of power does; the heal mounts
the surviving disks and restarts them.

Partitions and loss are nftables rules in a table of their own inside each master's namespace
(dropped silently, as a pulled cable: the sender learns nothing). The client host is never cut,
so clients keep talking to masters on both sides of a partition — which is exactly when a stale
leader could serve an old read or accept a write.

``delay`` and ``reorder`` hold the packets some masters send to the others for 20–200 ms each,
in order or not (``delayer.py``: an NFQUEUE reader, since this machine's kernel has no netem):
messages arrive late and, with ``reorder``, out of order at packet level, so TCP sees
reordering and spurious retransmits and Raft sees slow, bunched heartbeats and replies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hakube.testing.jepsen import delayer
from hakube.testing.lazyfs.mount import LazyFS
from hakube.testing.netmasters import master_pids
from hakube.testing.netns import Host

TABLE = "hakube_nemesis"
POWER_CUTS = ("power-cut", "power-cut-leader", "power-cut-majority", "power-cut-all")
"""Fault kinds that need every master on a lazy file system (``Nemesis.lazy``)."""
BALLAST = "nemesis-ballast"


def _nft(host: Host, script: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", host.netns, "nft", "-f", "-"],
        input=script,
        text=True,
        check=True,
        capture_output=True,
        timeout=10,
    )


def drop_between(host: Host, peers: list[Host], loss_percent: int = 100) -> None:
    """Drop traffic between ``host`` and ``peers`` (all of it, or a random share)."""
    if not peers:
        return
    addrs = ", ".join(p.ip for p in peers)
    match = "" if loss_percent >= 100 else f"numgen random mod 100 < {loss_percent} "
    _nft(
        host,
        f"""
table inet {TABLE} {{
  chain input {{ type filter hook input priority 0; policy accept;
    ip saddr {{ {addrs} }} {match}drop; }}
  chain output {{ type filter hook output priority 0; policy accept;
    ip daddr {{ {addrs} }} {match}drop; }}
}}""",
    )


def clear(host: Host) -> None:
    subprocess.run(
        ["ip", "netns", "exec", host.netns, "nft", "delete", "table", "inet", TABLE],
        capture_output=True,
        timeout=10,
    )


@dataclass
class Fault:
    kind: str
    targets: list[str]
    start: float
    end: float = 0.0

    def describe(self) -> str:
        return f"{self.start:8.2f}–{self.end:8.2f}s {self.kind} {','.join(self.targets)}"


@dataclass
class Nemesis:
    """Applies one fault at a time on a seeded schedule. ``restart`` starts a killed master
    again; ``leader`` names the current leader (or '')."""

    masters: list[Host]
    restart: Callable[[Host], None]
    leader: Callable[[], str]
    rng: random.Random
    clock: Callable[[], float]
    kinds: tuple[str, ...] = (
        "partition-majority",
        "isolate-leader",
        "bridge",
        "kill",
        "kill-leader",
        "pause",
        "pause-leader",
        "loss",
        "delay",
        "reorder",
    )
    timeline: list[Fault] = field(default_factory=list)
    _killed: list[Host] = field(default_factory=list)
    _paused: list[int] = field(default_factory=list)
    _queue: list[str] = field(default_factory=list)
    _delayers: list[delayer.Delayer] = field(default_factory=list)
    disks: dict[str, Path] = field(default_factory=dict)
    """Masters whose data directory is a small tmpfs of its own: ``disk-full`` fills it."""
    lazy: dict[str, LazyFS] = field(default_factory=dict)
    """Every master's lazy file system, by name: the power-cut faults cut them."""

    def _by_name(self, name: str) -> Host | None:
        return next((h for h in self.masters if h.name == name), None)

    def _victim(self, leader_first: bool) -> Host:
        if leader_first:
            found = self._by_name(self.leader())
            if found is not None:
                return found
        return self.rng.choice(self.masters)

    def inject(self) -> Fault:
        """Start one fault drawn from ``kinds``; it lasts until ``heal``."""
        if not self._queue:  # every kind once, in a seeded order, before any repeats
            self._queue = self.rng.sample(self.kinds, len(self.kinds))
        kind = self._queue.pop()
        targets = getattr(self, "_" + kind.replace("-", "_"))()
        fault = Fault(kind, targets, self.clock())  # once in place: finding the leader is slow
        self.timeline.append(fault)
        return fault

    def _cut(self, a: list[Host], b: list[Host]) -> list[str]:
        for h in a:
            drop_between(h, b)
        for h in b:
            drop_between(h, a)
        return ["+".join(h.name for h in a), "+".join(h.name for h in b)]

    def _partition_majority(self) -> list[str]:
        shuffled = self.rng.sample(self.masters, len(self.masters))
        cut = len(shuffled) // 2
        return self._cut(shuffled[:cut], shuffled[cut:])

    def _isolate_leader(self) -> list[str]:
        lone = self._victim(True)
        return self._cut([lone], [h for h in self.masters if h is not lone])

    def _bridge(self) -> list[str]:
        """Two halves that cannot reach each other; one member (the bridge) reaches both."""
        shuffled = self.rng.sample(self.masters, len(self.masters))
        bridge, rest = shuffled[0], shuffled[1:]
        a, b = self._cut(rest[: len(rest) // 2], rest[len(rest) // 2 :])
        return [a, bridge.name, b]

    def _loss(self) -> list[str]:
        lossy = self.rng.sample(self.masters, max(1, len(self.masters) // 2))
        for h in lossy:
            drop_between(h, [x for x in self.masters if x is not h], loss_percent=30)
        return [h.name for h in lossy]

    def _delay(self, keep_order: bool = True) -> list[str]:
        """Some masters (one to all) send late: every packet to another master waits."""
        slow = self.rng.sample(self.masters, self.rng.randint(1, len(self.masters)))
        seed = self.rng.randrange(1 << 30)
        self._delayers += delayer.start(slow, self.masters, keep_order=keep_order, seed=seed)
        return [h.name for h in slow]

    def _reorder(self) -> list[str]:
        return self._delay(keep_order=False)

    def _kill(self, leader: bool = False) -> list[str]:
        victim = self._victim(leader)
        for pid in master_pids(victim):
            os.kill(pid, signal.SIGKILL)
        self._killed.append(victim)
        return [victim.name]

    def _kill_leader(self) -> list[str]:
        return self._kill(leader=True)

    def _pause(self, leader: bool = False) -> list[str]:
        """SIGSTOP, for longer than an election takes: the rest elect a new leader, and the
        paused one wakes up believing it still leads."""
        victim = self._victim(leader)
        pids = master_pids(victim)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        self._paused += pids
        return [victim.name]

    def _pause_leader(self) -> list[str]:
        return self._pause(leader=True)

    def _disk_full(self) -> list[str]:
        """Fill a master's disk: it must fail writes (or die), never corrupt what it has."""
        name = self.rng.choice(sorted(self.disks))
        ballast = self.disks[name] / BALLAST
        with open(ballast, "wb") as f:
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:  # ENOSPC: full
                pass
        return [name]

    def _power_cut(self, victims: list[Host] | None = None) -> list[str]:
        """Kill the victims at once, wait until they are gone (their last writes handed to the
        file system), then drop what their disks had not synced."""
        victims = victims or [self._victim(False)]
        for h in victims:
            for pid in master_pids(h):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(master_pids(h) for h in victims) and time.monotonic() < deadline:
            time.sleep(0.02)
        for h in victims:
            self.lazy[h.name].cut()
        self._killed += victims
        return [h.name for h in victims]

    def _power_cut_leader(self) -> list[str]:
        return self._power_cut([self._victim(True)])

    def _power_cut_majority(self) -> list[str]:
        return self._power_cut(self.rng.sample(self.masters, len(self.masters) // 2 + 1))

    def _power_cut_all(self) -> list[str]:
        return self._power_cut(list(self.masters))

    def heal(self) -> None:
        """End every fault: links back, paused masters continued, killed masters restarted."""
        for d in self._delayers:
            d.stop()
        self._delayers.clear()
        for h in self.masters:
            clear(h)
        for pid in self._paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self._paused.clear()
        for disk in self.disks.values():
            (disk / BALLAST).unlink(missing_ok=True)
        for h in self._killed:
            deadline = time.monotonic() + 10
            while master_pids(h) and time.monotonic() < deadline:
                time.sleep(0.05)
        self._killed.clear()
        for h in self.masters:  # killed, or died of a fault (a full disk)
            if not master_pids(h):
                self.restart(h)
        if self.timeline and not self.timeline[-1].end:
            self.timeline[-1].end = self.clock()
