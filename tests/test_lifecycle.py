"""The lifecycle shape: library code that cannot start raises StartupError (catchable
in-process; only the CLI turns it into a message and an exit status), and every long-running
component follows the Service contract (stop before run, stop twice, stop from another thread
ends run within a bound, ready set once it serves)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hakube.agent.agent import Agent
from hakube.agent.config import AgentSettings
from hakube.agent.probes import ProbeManager
from hakube.client import Client
from hakube.console.server import Console
from hakube.cri.client import CriClient
from hakube.dns import ClusterDns, DnsSettings
from hakube.httpendpoint import serve_http
from hakube.leaderelection import Component, ElectionConfig
from hakube.lifecycle import Running, Service, StartupError, run_until_signal
from hakube.local.cluster import cluster_pki, free_ports
from hakube.master import Master, MasterSettings
from hakube.proxy.proxier import Proxier, ProxyConfig
from hakube.scheduler import Scheduler
from hakube.store import fsm as store
from hakube.store.ops import MemberRemove, wire
from hakube.testing import pki as testpki
from hakube.testing.join import token_for
from hakube.testing.rawstore import InProcessMaster


def test_a_taken_metrics_address_is_a_startup_error_not_an_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}") as exc:
            serve_http(f"127.0.0.1:{port}", CollectorRegistry(), "hakube test")
        assert exc.value.exit_code == 1


@pytest.mark.timeout(60)
def test_the_cli_prints_one_line_and_exits_1(tmp_path: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "hakube",
                "scheduler",
                "--servers",
                "127.0.0.1:1",
                "--metrics-listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=50,
        )
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on 127.0.0.1:{port} for metrics" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr


# -- the Service contract, over every component that starts cheaply in this process -----------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One in-process master the client-side components talk to (its endpoint)."""
    with InProcessMaster(str(tmp_path_factory.mktemp("api"))) as m:
        yield m.endpoint


def _client(api: str, user: str = "admin") -> Client:
    return Client([api], credentials=testpki.credentials(user=user), timeout=5)


def _master(api: str, tmp: Path) -> Master:
    port, raft = free_ports(2)
    pki = cluster_pki(str(tmp / "pki"), {"m1": ["127.0.0.1"]}, testpki.shared())
    return Master(
        MasterSettings(
            name="m1",
            data_dir=str(tmp / "m1"),
            api_listen=f"127.0.0.1:{port}",
            raft_listen=f"127.0.0.1:{raft}",
            peers={},
            k8s_api_listen="off",
            pki_dir=pki.root,
            raft={"fsync": False},
        )
    )


def _component(api: str, tmp: Path) -> Component:
    config = ElectionConfig(
        name=f"lc-{uuid.uuid4().hex[:6]}", namespace="kube-system", identity="a"
    )
    return Component(_client(api, "scheduler"), config, Scheduler())


def _dns(api: str, tmp: Path) -> ClusterDns:
    return ClusterDns(_client(api), DnsSettings(listen=("127.0.0.1:0",), upstream=()))


def _proxier(api: str, tmp: Path) -> Proxier:
    # A table of its own name; removed by _close (tests/proxy checks the rules in a netns).
    return Proxier(_client(api), ProxyConfig(table=f"lc-{uuid.uuid4().hex[:6]}"))


def _console(api: str, tmp: Path) -> Console:
    return Console(_client(api), "127.0.0.1:0")


def _agent(api: str, tmp: Path) -> Agent:
    token, ca_hash = token_for([api])
    return Agent(
        AgentSettings(
            token=token,
            ca_cert_hash=ca_hash,
            node_name=f"lc-{uuid.uuid4().hex[:6]}",
            servers=(api,),
            root_dir=str(tmp / "agent"),
            runtime="simulated",
            secret_volumes_on_disk=True,
            listen="127.0.0.1:0",
            node_ip="127.0.0.1",
        )
    )


def _probes(api: str, tmp: Path) -> ProbeManager:
    # The agent's probe schedule (no container registered: it never calls the runtime).
    return ProbeManager(CriClient(str(tmp / "no-runtime.sock")), lambda *_: None)


SERVICES: dict[str, tuple[Callable[[str, Path], Service], bool]] = {
    # name: (factory, becomes ready in this process)
    "master": (_master, True),
    "leader-elected component": (_component, True),
    "dns": (_dns, True),
    "proxy": (_proxier, False),
    "console": (_console, True),
    "agent": (_agent, True),
    "agent probes": (_probes, True),
}
BOUND = 15.0
"""Seconds a stopped service may take to return from run()."""


def _close(service: Service) -> None:
    """Close the connections a test made for the service (a service never closes what it was
    given), and remove the nftables table a proxy may have programmed before it stopped (the
    proxy keeps its table on exit, by design; the test must not leave it on the host)."""
    for name in ("client", "cri"):
        conn = getattr(service, name, None)
        if isinstance(conn, Client | CriClient) and not isinstance(service, Agent):
            conn.close()
    if isinstance(service, Proxier):
        subprocess.run(
            ["nft", "delete", "table", "ip", service.config.table],
            capture_output=True,
            check=False,
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SERVICES)
def test_a_service_stopped_before_it_runs_returns_at_once(
    name: str, api: str, tmp_path: Path
) -> None:
    service = SERVICES[name][0](api, tmp_path)
    assert isinstance(service, Service)
    try:
        service.stop()
        service.stop()
        started = time.monotonic()
        running = Running.start(service)
        assert running.join(BOUND), f"{name}: run() after stop() did not return"
        assert running.error is None, f"{name}: {running.error!r}"
        assert time.monotonic() - started < BOUND
        assert not service.ready.is_set()
    finally:
        _close(service)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SERVICES)
def test_a_service_gets_ready_and_a_stop_from_another_thread_ends_it(
    name: str, api: str, tmp_path: Path
) -> None:
    factory, gets_ready = SERVICES[name]
    service = factory(api, tmp_path)
    running = Running.start(service)
    try:
        if gets_ready:
            assert running.wait_ready(60), f"{name} not ready: {running.error!r}"
        else:
            time.sleep(0.5)  # under way (its informers are listing)
        assert running.alive, f"{name} ended by itself: {running.error!r}"
        stoppers = [threading.Thread(target=service.stop) for _ in range(2)]  # and twice
        started = time.monotonic()
        for t in stoppers:
            t.start()
        assert running.join(BOUND), f"{name}: run() still running {BOUND} s after stop()"
        took = time.monotonic() - started
        print(f"{name}: run() returned {took:.2f} s after stop()")
        assert running.error is None, f"{name}: {running.error!r}"
        service.stop()  # after the end too
        for t in stoppers:
            t.join(BOUND)
            assert not t.is_alive()
    finally:
        running.stop(BOUND)
        _close(service)


@pytest.mark.timeout(60)
def test_sigterm_stops_a_service_run_until_signal(api: str, tmp_path: Path) -> None:
    """The daemons' body: SIGTERM calls stop(), run() returns, the old handler is back."""
    console = _console(api, tmp_path)
    before = signal.getsignal(signal.SIGTERM)

    def kill_when_ready() -> None:
        if console.ready.wait(30):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=kill_when_ready, daemon=True).start()
    try:
        run_until_signal(console, what="hakube console")
    finally:
        _close(console)
    assert console.ready.is_set() and console.stopping.is_set()
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.timeout(60)
def test_run_until_signal_raises_what_run_raised(api: str, tmp_path: Path) -> None:
    """A StartupError inside run() reaches the CLI (hakube.cli.main prints it)."""
    first = _master(api, tmp_path)
    running = Running.start(first)
    try:
        assert running.wait_ready(60), repr(running.error)
        second = _master(api, tmp_path)  # the same data dir, locked by the first
        with pytest.raises(StartupError, match="in use by another master"):
            run_until_signal(second, what="hakube master")
    finally:
        assert running.stop(BOUND)


@pytest.mark.timeout(60)
def test_a_master_removed_from_the_cluster_ends_its_run_with_the_reason(
    api: str, tmp_path: Path
) -> None:
    """A master stops itself (a removed member must never serve stale data): run() returns by
    raising StartupError with the one line the CLI prints."""
    master = _master(api, tmp_path)
    running = Running.start(master)
    try:
        assert running.wait_ready(60), repr(running.error)
        assert master.raft is not None
        tombstone = MemberRemove("m1", master.settings.raft_listen)
        code, _, _ = master.raft.proposer.submit(wire(tombstone)).result(10)
        assert code == store.OK
        assert running.join(BOUND), "the removed master kept running"
        assert isinstance(running.error, StartupError), repr(running.error)
        assert "m1 was removed from the cluster" in str(running.error)
    finally:
        running.stop(BOUND)
