"""Helpers for membership, snapshot and recovery tests on a LocalCluster: run the ``hakube`` CLI,
add a master process, restart masters with stale ``--peers``, and a writer that records which
writes were acknowledged (to prove none is lost)."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import threading

import grpc

from hakube.local import procs
from hakube.local.cluster import MasterProc, free_ports
from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for


def hakube(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``hakube ARGS`` command line and capture its output. The client commands run in
    this process (the same ``main`` as the console script, without ~1.5 s of interpreter and
    import start-up per call); ``hakube master`` is never run this way."""
    from hakube.cli.main import main

    assert args and args[0] != "master"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["hakube", *args], rc, out.getvalue(), err.getvalue())


def new_master(cluster: LocalCluster, name: str) -> MasterProc:
    """A master with fresh ports and data dir, listed in the cluster but not started."""
    api, raft, metrics, k8s_api = (f"127.0.0.1:{p}" for p in free_ports(4))
    m = MasterProc(
        name=name,
        api=api,
        raft=raft,
        metrics=metrics,
        k8s_api=k8s_api,
        data_dir=os.path.join(cluster.base_dir, name),
        log_path=os.path.join(cluster.base_dir, f"{name}.log"),
    )
    cluster.masters.append(m)
    return m


def wait_listening(address: str, timeout: float = 30.0) -> None:
    """Wait until something accepts TCP connections at HOST:PORT (a master's Raft port)."""
    host, _, port = address.rpartition(":")

    def up() -> bool:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_for(up, timeout, f"{address} to listen")


def restart_all(
    cluster: LocalCluster, peers: dict[str, str] | None = None, timeout: float = 60.0
) -> None:
    """Stop every master at once (SIGTERM to all, then wait), then start them all, with flags
    naming ``peers`` (if given) as the peers, and wait until they are ready."""
    procs.stop([m.proc for m in cluster.masters if m.proc is not None and m.alive], timeout=10)
    for m in cluster.masters:
        if peers is not None:
            with_stale_peers(m, peers)
        cluster.start(m)
    cluster.wait_ready(timeout=timeout)


def with_stale_peers(m: MasterProc, peers: dict[str, str]) -> None:
    """Make the next start of ``m`` pass ``--peers`` naming ``peers`` (argparse keeps the last
    occurrence), to prove that restarts follow the data dir's membership, not the flags."""
    stale = ",".join(f"{n}={a}" for n, a in peers.items() if n != m.name)
    if "--peers" in m.extra_args:
        i = m.extra_args.index("--peers")
        m.extra_args[i + 1] = stale
    else:
        m.extra_args += ["--peers", stale]


class Writer(threading.Thread):
    """Creates ConfigMaps back to back and records which ones were acknowledged."""

    def __init__(self, api: Api, prefix: str) -> None:
        super().__init__(daemon=True)
        self.api, self.prefix = api, prefix
        self.acked: list[str] = []
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            name = f"{self.prefix}-{i}"
            try:
                self.api.create_configmap(name)
                self.acked.append(name)
            except grpc.RpcError as exc:
                self.failed.append(f"{name}: {exc.code()} {exc.details()}")
            i += 1

    def reconnect(self) -> None:
        """Use fresh channels (after masters restarted, old channels may sit in gRPC's
        reconnect backoff for seconds). The old channels are left to the garbage collector: a
        call may still be running on them."""
        self.api = Api(self.api.endpoints)

    def finish(self) -> None:
        """Stop writing and wait for the write in progress."""
        self.stop.set()
        self.join(60)
