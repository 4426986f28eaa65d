"""Ask masters on netns hosts who leads and whether they are ready, without starting a process.

The nemesis asks for the leader before every leader-targeted fault, and the run polls every
master's /readyz after each heal. Done with ``ip netns exec python ...`` each question costs a
Python start, which takes seconds on a loaded machine — long enough to stretch the calm between
faults to a minute and to blur when a fault really began. Here a short-lived thread enters the
host's network namespace (``setns`` changes only the calling thread's) and reads the master's
loopback metrics endpoint over a plain socket; the thread ends right after, so no other code
ever runs in the wrong namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time

from hakube.testing.netmasters import METRICS_PORT
from hakube.testing.netns import Host

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def http_get(host: Host, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """GET ``path`` from the host's loopback metrics port: (status, body); (0, reason) if
    nothing answered in time."""
    result: list[tuple[int, str]] = [(0, "no answer")]

    def ask() -> None:
        fd = os.open(f"/var/run/netns/{host.netns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                result[0] = (0, f"setns: {os.strerror(ctypes.get_errno())}")
                return
        finally:
            os.close(fd)
        try:
            with socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=timeout) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
            head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
            result[0] = (int(head.split()[1]), body.decode(errors="replace"))
        except (OSError, ValueError, IndexError) as exc:
            result[0] = (0, str(exc))

    t = threading.Thread(target=ask, name=f"probe-{host.name}", daemon=True)
    t.start()
    t.join(timeout + 1.0)
    return result[0]


def is_ready(host: Host) -> bool:
    """The host's master answers /readyz with 200."""
    return http_get(host, "/readyz")[0] == 200


def gauges(host: Host) -> dict[str, float]:
    """The master's unlabelled gauges from /metrics, and the leader's per-follower lag
    (``hakube_raft_follower_lag_entries{peer="m2"}``); empty if it did not answer."""
    status, body = http_get(host, "/metrics")
    if status != 200:
        return {}
    out = {}
    for line in body.splitlines():
        name, _, value = line.partition(" ")
        if name and not name.startswith("#") and ("{" not in name or "follower_lag" in name):
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def leader(masters: list[Host]) -> str:
    """The master that says it leads and is in a quorum (the highest term if several do);
    '' if none does."""
    best: tuple[float, str] = (-1.0, "")
    for h in masters:
        g = gauges(h)
        if g.get("hakube_raft_is_leader") == 1 and g.get("hakube_raft_ready") == 1:
            best = max(best, (g.get("hakube_raft_term", 0.0), h.name))
    return best[1]


def raft_line(h: Host) -> str:
    """One master's Raft view in a line: term, leader?, in quorum?, commit and applied index,
    and (on the leader) each follower's lag in entries; ``down`` if it did not answer."""
    g = gauges(h)
    if not g:
        return f"{h.name} down"
    parts = [
        f"{k}={g[f'hakube_raft_{k}']:.0f}"
        for k in ("term", "is_leader", "ready", "commit_index", "applied_index")
        if f"hakube_raft_{k}" in g
    ]
    lag = [
        f"{k.split('peer=')[1].strip('}').strip(chr(34))}:{v:.0f}"
        for k, v in sorted(g.items())
        if "follower_lag" in k
    ]
    if lag:
        parts.append("lag=" + ",".join(lag))
    return f"{h.name} " + " ".join(parts)


class Monitor:
    """Every ``every`` seconds, each master's :func:`raft_line` into ``path`` with the time:
    the record that shows whether a master out of the quorum is catching up or stuck."""

    def __init__(self, masters: list[Host], path: os.PathLike[str] | str, every: float = 5.0):
        self.masters = masters
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="raft-monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            line = " | ".join(raft_line(h) for h in self.masters)
            with open(self.path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S', time.gmtime())} {line}\n")
