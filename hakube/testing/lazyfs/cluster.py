"""Masters whose data directories are lazy file systems, and power cuts of any of them.

A cut of a master is what a machine losing power does to it: the process dies (SIGKILL, by
pid) and its disk keeps only what was synced (``LazyFS.cut``). Restarting it mounts the surviving
disk and starts the master on it. ``LeaderLog`` watches for the Raft safety property a lost
term or vote would break: no two members lead in the same term.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict

import grpc

from hakube.local.cluster import MasterProc
from hakube.testing.cluster import LocalCluster
from hakube.testing.lazyfs.mount import LazyFS


class LazyCluster(LocalCluster):
    """A LocalCluster whose master ``mN`` keeps its data on a lazy file system mounted at its
    data dir, backed by ``<base>/mN.disk``. Unmounts everything on exit, also on failure."""

    def __init__(
        self,
        base_dir: str,
        n: int = 3,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(base_dir, n, extra_args=extra_args, env=env)
        self.disks = {
            m.name: LazyFS(os.path.join(base_dir, f"{m.name}.disk"), m.data_dir)
            for m in self.masters
        }

    def start(self, m: MasterProc) -> None:
        self.disks[m.name].mount()
        super().start(m)

    def __enter__(self) -> LazyCluster:
        try:
            super().__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def power_cut(self, masters: list[MasterProc]) -> None:
        """Cut the power of ``masters`` at once: kill them all — with the compaction child a
        master may have forked, in its process group (each master leads a session of its own)
        — then, once nothing of theirs runs, drop their unsynced data."""
        groups = [m.proc.pid for m in masters if m.proc is not None and m.proc.poll() is None]
        for pgid in groups:
            os.killpg(pgid, signal.SIGKILL)
        for m in masters:
            if m.proc is not None:
                m.proc.wait(10)
        deadline = time.monotonic() + 10
        while _running_in(groups) and time.monotonic() < deadline:
            time.sleep(0.02)
        for m in masters:
            self.disks[m.name].cut()

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for disk in self.disks.values():
                disk.close()


def _running_in(groups: list[int]) -> bool:
    """Whether a live (not zombie) process belongs to one of the process groups."""
    wanted = set(groups)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in wanted:
            return True
    return False


class LeaderLog:
    """Polls every live master's status in a thread and records who claims to lead in which
    term. ``conflicts`` lists the terms two members led (a Raft safety violation)."""

    def __init__(self, cluster: LocalCluster, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.interval = interval
        self.leaders: dict[int, set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-log", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self.cluster.masters:
                if not m.alive:
                    continue
                try:
                    st = self.cluster.status(m, timeout=1.0)
                except grpc.RpcError:
                    continue
                if st.raft_state == "leader":
                    self.leaders[st.term].add(st.name)
            self._stop.wait(self.interval)

    def conflicts(self) -> dict[int, set[str]]:
        return {t: names for t, names in self.leaders.items() if len(names) > 1}

    def __enter__(self) -> LeaderLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
