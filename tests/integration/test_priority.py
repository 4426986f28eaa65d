"""Priority and fairness on a real three-master cluster: one client storms big writes (never
backing off) at one master while simulated nodes renew their Leases with their own identities
and a real controller-manager holds its leader-election Lease and watches the nodes.

The storming client is refused (RESOURCE_EXHAUSTED with a retry hint) instead of slowing
everyone; no node Lease renewal fails or falls behind, no node turns NotReady, the
controller-manager keeps its Lease; another user's writes in the storm's own priority level keep
a latency within a bound of their unloaded latency measured in the same test.

The bound is relative and generous, because the machine is shared (2 cores, other test suites
running): the storm also costs CPU (decoding and refusing 64 KiB requests), which no queueing
discipline can hide, so the quiet writer may be slowed by a constant factor -- what must not
happen is the quiet writer queueing behind the storm (seconds, or refusals).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.client import errors
from hakube.pki.tls import channel_credentials
from hakube.testing import overload, reaper
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs

pytestmark = pytest.mark.timeout(240)

CM_LEASE = "hakube-controller-manager"
NODES = [f"apf-node-{i}" for i in range(4)]
QUIET_BOUND = 20.0
"""The quiet writer's p50 under the storm may be this many times its unloaded p50 (CPU
contention on a shared 2-core machine), plus QUIET_SLACK seconds."""
QUIET_SLACK = 0.5
"""A quiet write in the storm's own level waits for a seat the storm holds until its batch
commits (one Raft commit of about 1 MiB: 0.1-0.25 s measured on a loaded machine), and its own
commit carries storm writes too. Starving it would cost seconds (the 5 s queue wait, or
refusals and the client's back-off)."""
NODE_GRACE = 5.0
"""The controller-manager's --node-monitor-grace-period: a node whose Lease goes unrenewed
this long turns NotReady; the renewal deadline the nodes must keep."""
STORM_INFLIGHT = 200
STORM_SIZE = 128 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three masters with few seats and short queues, so that one client can fill a level."""
    args = ["--max-requests-inflight", "30", "--flow-queue-length", "4", "--history-size", "500"]
    cluster = LocalCluster(str(tmp_path_factory.mktemp("apf")), 3, extra_args=args)
    with cluster:
        yield cluster


def _metric(cluster: LocalCluster, name: str, **labels: str) -> float:
    url = f"http://{cluster.masters[0].metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def test_a_write_storm_is_refused_while_leases_and_a_quiet_client_carry_on(
    small: LocalCluster, tmp_path: object
) -> None:
    endpoint = small.masters[0].api
    admin = small.client()
    stop = threading.Event()
    storm = renewers = prober = None
    cm = ComponentProcs(
        "controller-manager",
        small.endpoints(),
        str(tmp_path),
        extra_args=[
            "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5",
            "--node-monitor-grace-period", str(NODE_GRACE),
        ],
    )  # fmt: skip
    try:
        storm = overload.storm_and_quiet(
            small, admin, endpoint, inflight=STORM_INFLIGHT, size=STORM_SIZE
        )
        renewers = overload.NodeRenewers(small, endpoint, NODES, interval=0.5)
        renewers.register(admin)
        renewers.start()
        cm.start("cm-a")

        def holder() -> core_pb2.Lease:
            return admin.leases.get(CM_LEASE, namespace="kube-system")

        def leading() -> bool:
            try:
                return holder().spec.holder_identity == "cm-a"
            except errors.NotFound:
                return False

        _wait_for(leading, 30, "the controller-manager to lead")
        lease_before = holder()
        prober = overload.Prober(small, endpoint, "quiet", "quiet")
        prober.measure(5)  # warm up (channel, RBAC cache)
        unloaded = prober.measure(30)

        not_ready: list[str] = []
        holders: set[str] = set()

        def watch_cluster() -> None:
            while not stop.wait(0.3):
                for node in admin.nodes.list().items:
                    for c in node.status.conditions:
                        if c.type == "Ready" and c.status != "True":
                            not_ready.append(f"{node.metadata.name}: {c.reason}")
                holders.add(holder().spec.holder_identity)

        watcher = threading.Thread(target=watch_cluster, daemon=True)
        watcher.start()
        quiet_renewals = renewers.snapshot()[0]
        renewers.reset()
        storm.start()
        time.sleep(1.0)  # the storm is in full swing
        loaded = prober.measure_for(5.0)
        counts = storm.result(timeout=30)
        # The storm's child is gone with its answer, and nothing of it stays (multiprocessing's
        # resource tracker did, until the runner exited).
        assert storm.proc is not None and storm.proc.poll() == 0
        assert not [p.cmd for p in reaper.session_processes(os.environ[reaper.ENV])
                    if "multiprocessing" in p.cmd]  # fmt: skip
        stop.set()
        watcher.join(10)
        latencies, failures, gaps = renewers.snapshot()

        # The storming client was refused, and got some writes through.
        assert counts.get("RESOURCE_EXHAUSTED", 0) > 0, counts  # each with a retry hint
        assert "RESOURCE_EXHAUSTED without retry hint" not in counts, counts
        assert counts.get("OK", 0) > 0, counts
        assert _metric(small, "hakube_flowcontrol_rejected_requests_total",
                       priority_level="workload-low") > 0  # fmt: skip
        for level in ("system", "leader-election"):
            assert _metric(small, "hakube_flowcontrol_rejected_requests_total",
                           priority_level=level) == 0  # fmt: skip
        # Node heartbeats: every renewal went through, each within the nodes' deadline.
        assert not failures, failures[:5]
        assert len(latencies) >= len(NODES) * 5, len(latencies)
        assert max(gaps.values()) < NODE_GRACE - 1, gaps
        assert not not_ready, not_ready[:5]
        # The leader-elected component kept its Lease throughout.
        lease_after = holder()
        assert holders == {"cm-a"}, holders
        assert lease_after.spec.lease_transitions == lease_before.spec.lease_transitions
        # The quiet writer in the storm's own level was not starved.
        p50_unloaded = overload.percentile(unloaded, 0.5)
        p50_loaded = overload.percentile(loaded, 0.5)
        waited = _metric(small, "hakube_flowcontrol_request_wait_duration_seconds_sum",
                         priority_level="system")  # fmt: skip
        print(
            f"renewals unloaded p99 {overload.percentile(quiet_renewals, 0.99) * 1000:.1f} ms; "
            f"system level queued {waited * 1000:.1f} ms in total; "
            f"storm {counts}; renewals {len(latencies)} p99 "
            f"{overload.percentile(latencies, 0.99) * 1000:.1f} ms max gap "
            f"{max(gaps.values()):.2f} s; quiet p50 {p50_unloaded * 1000:.1f} ms unloaded, "
            f"{p50_loaded * 1000:.1f} ms under the storm ({len(loaded)} writes)"
        )
        assert len(loaded) >= 10, loaded
        assert p50_loaded <= QUIET_BOUND * p50_unloaded + QUIET_SLACK, (p50_unloaded, p50_loaded)
    finally:
        stop.set()
        if storm is not None:
            storm.stop()
        if renewers is not None:
            renewers.stop()
        if prober is not None:
            prober.close()
        cm.stop_all()
        admin.close()


def _watch(stub: Any, kind: str, namespace: str) -> Any:
    """A watch from revision 0 whose first event has arrived (so the server holds it)."""
    call = stub.Watch(api_pb2.WatchRequest(kind=kind, namespace=namespace))
    next(call)
    return call


def test_a_client_over_its_watch_cap_is_refused_naming_the_cap(small: LocalCluster) -> None:
    """The default cap (100 streams per client identity per master) with a raw gRPC client;
    another client is unaffected, and closing a stream frees a slot."""
    admin = small.client()
    admin.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}})
    overload.grant_configmap_writes(admin, ["watcher", "watcher2"])
    creds = overload.user_credentials(small, "watcher")
    endpoint = small.masters[0].api
    channel = grpc.secure_channel(endpoint, channel_credentials(creds))
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    calls = []
    try:
        calls = [_watch(stub, "ConfigMap", "default") for _ in range(100)]
        with pytest.raises(grpc.RpcError) as err:
            _watch(stub, "ConfigMap", "default")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 'user "watcher" already has 100 watch streams' in (err.value.details() or "")
        assert "--max-watches-per-client=100" in (err.value.details() or "")
        # Another client's streams are its own.
        creds2 = overload.user_credentials(small, "watcher2")
        with grpc.secure_channel(endpoint, channel_credentials(creds2)) as other:
            _watch(api_pb2_grpc.ObjectServiceStub(other), "ConfigMap", "default").cancel()
        # A closed stream gives its slot back (once the master has seen the cancellation).
        calls.pop().cancel()
        deadline = time.monotonic() + 10
        while True:
            try:
                calls.append(_watch(stub, "ConfigMap", "default"))
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        for c in calls:
            c.cancel()
        channel.close()
        admin.close()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_watches_from_revision_0_cost_little_memory_and_do_not_hold_up_writes(
    small: LocalCluster,
) -> None:
    """60 watches from revision 0 of a 2,000-object (4 MiB) kind, none of them reading past
    the first event: before, each encoded a copy of the kind (240 MiB) under the store lock;
    now each holds references and what gRPC's flow control lets through."""
    admin = small.client()
    admin.create(core_pb2.Namespace(metadata={"name": "many"}))
    body = "y" * 2048

    def fill(start: int) -> None:
        for i in range(start, 2000, 8):
            admin.create(
                core_pb2.ConfigMap(
                    metadata={"name": f"cm-{i}", "namespace": "many"}, data={"d": body}
                )
            )

    fillers = [threading.Thread(target=fill, args=(k,)) for k in range(8)]
    for t in fillers:
        t.start()
    for t in fillers:
        t.join(120)
    m = small.masters[0]
    assert m.proc is not None
    channel = small.channel(m.api)
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    calls: list[Any] = []
    probe = overload.Prober(small, m.api, "prober", "many")
    overload.grant_configmap_writes(admin, ["prober"])
    try:
        probe.measure(5)
        unloaded = probe.measure(20)
        before = _rss(m.proc.pid)
        opened = threading.Event()

        def open_all() -> None:
            for _ in range(60):
                calls.append(_watch(stub, "ConfigMap", "many"))
            opened.set()

        opener = threading.Thread(target=open_all)
        opener.start()
        during: list[float] = []
        while not opened.is_set():
            during.extend(probe.measure(1))
        opener.join(60)
        grown = _rss(m.proc.pid) - before
        p50_unloaded = overload.percentile(unloaded, 0.5)
        p50_during = overload.percentile(during, 0.5)
        print(
            f"60 watches of 2,000 objects: master RSS +{grown / 2**20:.1f} MiB; writes p50 "
            f"{p50_unloaded * 1000:.1f} ms before, {p50_during * 1000:.1f} ms while they opened"
        )
        assert len(calls) == 60
        assert grown < 64 * 2**20, grown
        assert p50_during <= QUIET_BOUND * p50_unloaded + QUIET_SLACK, (p50_unloaded, p50_during)
    finally:
        for c in calls:
            c.cancel()
        channel.close()
        probe.close()
        admin.close()
