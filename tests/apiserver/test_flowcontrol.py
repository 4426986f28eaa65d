"""API priority and fairness, piece by piece: classification of real identities, shuffle-sharded
fair queuing (a quiet flow is served while a noisy one floods its level), queue limits and wait
timeouts, the Raft proposer's priority lane, and the Python client honouring a master's retry
hint on a real TLS gRPC server."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from hakube.api.v1 import api_pb2
from hakube.apiserver.authz.attributes import Attributes
from hakube.apiserver.flowcontrol import FlowControl, PriorityLevel, Settings, TooBusy
from hakube.apiserver.flowcontrol.config import DEFAULT_LEVELS
from hakube.apiserver.flowcontrol.configfile import apply_file
from hakube.apiserver.flowcontrol.controller import RETRY_AFTER_KEY, seats_of
from hakube.apiserver.flowcontrol.fairqueue import QueueSet, Rejected, deal
from hakube.client import errors
from hakube.client.transport import RetryPolicy, Transport
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.pki.tls import server_credentials
from hakube.store import ops
from hakube.store import proposer as proposer_mod
from hakube.store.proposer import Proposer
from hakube.testing import pki as testpki

ADMIN = Identity(names.ADMIN_USER, (names.ADMINS_GROUP,))
MASTER = Identity(names.master_user("m1"), (names.MASTERS_GROUP,))
NODE = Identity(names.node_user("n1"), (names.NODES_GROUP,))
SCHEDULER = Identity(names.SCHEDULER_USER)
CONTROLLERS = Identity(names.CONTROLLER_MANAGER_USER)
ALICE = Identity("alice", ("dev",))
BOOTSTRAP = Identity("system:bootstrap:abcdef", (names.BOOTSTRAPPERS_GROUP,))


@pytest.mark.parametrize(
    "who,verb,resource,level",
    [
        (ADMIN, "create", "pods", "exempt"),
        (MASTER, "get", "leases", "exempt"),
        (NODE, "update", "leases", "system"),
        (NODE, "update", "nodes/status", "system"),
        (NODE, "watch", "pods", "system"),
        (SCHEDULER, "update", "leases", "leader-election"),
        (CONTROLLERS, "get", "leases", "leader-election"),
        (SCHEDULER, "create", "pods/binding", "workload-high"),
        (CONTROLLERS, "list", "pods", "workload-high"),
        (ALICE, "create", "configmaps", "workload-low"),
        (ALICE, "update", "leases", "workload-low"),
        (ALICE, "get", "configmaps", "global-default"),
        (ALICE, "", "", "global-default"),
        (BOOTSTRAP, "create", "certificatesigningrequests", "workload-low"),
    ],
)
def test_requests_are_classified_by_who_asks_and_what_for(
    who: Identity, verb: str, resource: str, level: str
) -> None:
    flow = FlowControl(Settings())
    assert flow.classify(who, verb, resource)[0].name == level


def test_a_request_no_schema_matches_goes_to_catch_all() -> None:
    schemas = tuple(s for s in Settings().schemas if s.name not in ("global-default",))
    flow = FlowControl(Settings(schemas=schemas))
    assert flow.classify(ALICE, "get", "pods")[0].name == "catch-all"


def test_only_heartbeat_levels_take_the_proposers_priority_lane() -> None:
    flow = FlowControl(Settings())
    urgent = {name for name, lv in flow.levels.items() if lv.urgent}
    assert urgent == {"system", "leader-election"}


def test_seats_are_shared_by_shares_and_every_level_has_one() -> None:
    seats = seats_of(Settings(max_requests_inflight=205))
    assert seats["workload-low"] == 100 and seats["system"] == 30 and seats["catch-all"] == 5
    assert "exempt" not in seats
    assert min(seats_of(Settings(max_requests_inflight=1)).values()) == 1


def test_bad_settings_are_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match="hand size"):
        Settings(levels=(PriorityLevel("x", shares=1, queues=2, hand_size=3),)).validate()
    with pytest.raises(ValueError, match="does not exist"):
        Settings(schemas=(*Settings().schemas[:-1],), levels=DEFAULT_LEVELS[1:]).validate()
    with pytest.raises(ValueError, match="--flow-queue-wait 0: must be > 0 seconds"):
        Settings(queue_wait=0).validate()


def test_a_flow_always_gets_the_same_hand_of_distinct_queues() -> None:
    hand = deal("alice", 64, 6)
    assert hand == deal("alice", 64, 6) and len(set(hand)) == 6
    assert all(0 <= q < 64 for q in hand)
    assert deal("bob", 64, 6) != hand


def _level(seats: int, **kw: Any) -> QueueSet:
    return QueueSet(PriorityLevel("test", shares=1, **kw), seats)


def test_a_quiet_flow_is_served_while_a_noisy_one_floods_the_level() -> None:
    """One seat; the noisy flow queues 300 requests before the quiet flow's 20. In arrival
    order the quiet flow would wait for all 300; fair queuing serves it within a round of the
    noisy flow's hand (its queues) per request."""
    qs = _level(1, queues=64, hand_size=6, queue_length=100)
    order: list[str] = []

    async def one(flow: str) -> None:
        await qs.acquire(flow, wait=30)
        order.append(flow)
        await asyncio.sleep(0)
        qs.release()

    async def main() -> None:
        assert qs.try_seat()  # the level is busy: everything below queues
        tasks = [asyncio.create_task(one("noisy")) for _ in range(300)]
        tasks += [asyncio.create_task(one("quiet")) for _ in range(20)]
        await asyncio.sleep(0)
        qs.release()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    last_quiet = max(i for i, f in enumerate(order) if f == "quiet")
    assert len(order) == 320
    # At most hand_size noisy queues between two quiet turns: 20 * (6 + 1) = 140.
    assert last_quiet < 20 * 7, last_quiet
    assert qs.executing == 0 and qs.waiting == 0


def test_a_full_queue_refuses_at_once_and_a_long_wait_times_out() -> None:
    qs = _level(1, queues=1, hand_size=1, queue_length=2)

    async def main() -> None:
        assert qs.try_seat()
        waiting = [asyncio.create_task(qs.acquire("a", wait=0.2)) for _ in range(2)]
        await asyncio.sleep(0)
        assert qs.waiting == 2
        with pytest.raises(Rejected) as full:
            await qs.acquire("a", wait=1)
        assert full.value.reason == "queue-full"
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert [getattr(r, "reason", r) for r in results] == ["timeout", "timeout"]
        assert qs.waiting == 0 and qs.executing == 1
        qs.release()
        assert qs.executing == 0

    asyncio.run(main())


def test_a_caller_that_goes_away_while_queued_leaves_no_seat_behind() -> None:
    qs = _level(1, queues=4, hand_size=2, queue_length=10)

    async def main() -> None:
        assert qs.try_seat()
        task = asyncio.create_task(qs.acquire("a", wait=10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert qs.waiting == 0
        qs.release()
        assert qs.executing == 0 and qs.try_seat()

    asyncio.run(main())


def test_a_refusal_names_the_level_and_carries_the_retry_hint() -> None:
    flow = FlowControl(Settings(max_requests_inflight=1, queue_wait=0.05, retry_after=0.25))
    attrs = Attributes("create", "", "configmaps", namespace="dev")

    async def main() -> None:
        level = await flow.admit(ALICE, attrs)  # the level's one seat
        with pytest.raises(TooBusy) as busy:
            await flow.admit(ALICE, attrs)
        flow.done(level)
        assert 'priority level "workload-low"' in busy.value.message
        assert busy.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert busy.value.trailers == ((RETRY_AFTER_KEY, "250"),)
        # Exempt callers are never refused, however busy the levels are.
        level = await flow.admit(ALICE, attrs)
        for _ in range(5):
            await flow.admit(ADMIN, attrs)
        flow.done(level)

    asyncio.run(main())


def test_a_client_holds_at_most_its_cap_of_watch_streams() -> None:
    flow = FlowControl(Settings(max_streams_per_client=2))
    with flow.stream(ALICE), flow.stream(ALICE):
        with pytest.raises(Exception, match="already has 2 watch streams.*=2"):
            with flow.stream(ALICE):
                pass
        with flow.stream(NODE):  # another client's count is its own
            pass
    with flow.stream(ADMIN), flow.stream(ADMIN), flow.stream(ADMIN):  # exempt: not capped
        pass
    assert flow.streams == {}


def test_urgent_writes_go_first_and_their_batch_stays_small() -> None:
    """Ten 1 MiB writes are pending behind a full pipeline; a lease renewal submitted after
    them is proposed at once, first in its batch, with at most 256 KiB of the bulk writes."""
    sent: list[list[tuple[Any, ...]]] = []
    callbacks: list[Any] = []

    def apply_batch(ops: list[tuple[Any, ...]], callback: Any) -> None:
        sent.append(ops)
        callbacks.append(callback)

    p = Proposer(apply_batch, can_propose=lambda: True, max_inflight=1)
    big = b"x" * (1024 * 1024)
    p.submit(ops.wire(ops.Create("r0", "ConfigMap", "ns", "first", big, {}, {}, 0)))
    for i in range(10):
        p.submit(ops.wire(ops.Create(f"r{i + 1}", "ConfigMap", "ns", f"cm{i}", big, {}, {}, 0)))
    ctx = contextvars.copy_context()
    ctx.run(proposer_mod.urgent.set, True)
    renewal = ctx.run(
        p.submit, ops.wire(ops.Update("lease", "Lease", "kube-node-lease", "n1", b"l", {}, {}, 0))
    )
    # The pipeline is full for bulk writes, but the renewal goes out at once, first, with at
    # most 256 KiB of bulk writes beside it.
    assert len(sent) == 2
    assert sent[1][0][4] == "n1"
    assert sum(len(op[5]) for op in sent[1][1:]) <= 256 * 1024
    callbacks[1]([("ok", 2, 2)] * len(sent[1]), 0)
    assert renewal.result(1) == ("ok", 2, 2)
    assert len(sent) == 2  # one bulk batch in flight: the next waits for it
    callbacks[0]([("ok", 1, 1)], 0)
    assert len(sent) == 3 and all(op[4] != "n1" for op in sent[2])


# -- the client and the retry hint --------------------------------------------------------------


class _Busy:
    """A real TLS gRPC server whose Get refuses ``refusals`` times with a retry hint."""

    def __init__(self, refusals: int, hint_ms: int) -> None:
        self.refusals = refusals
        self.hint_ms = hint_ms
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def get(self, raw: bytes, ctx: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.calls.append(time.monotonic())
            refuse = len(self.calls) <= self.refusals
        if refuse:
            ctx.set_trailing_metadata(((RETRY_AFTER_KEY, str(self.hint_ms)),))
            ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, 'priority level "workload-low" is busy')
        return api_pb2.Object().SerializeToString()


@pytest.fixture
def busy_server() -> Iterator[tuple[_Busy, str]]:
    pki = testpki.shared()
    pki.issue_master(pki.load_ca(), "apf-busy", ["127.0.0.1"])
    busy = _Busy(refusals=3, hint_ms=200)
    server = grpc.server(futures.ThreadPoolExecutor(4))
    handler = grpc.unary_unary_rpc_method_handler(busy.get)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("hakube.api.v1.ObjectService", {"Get": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki.master_tls("apf-busy")))
    server.start()
    try:
        yield busy, f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _get(stubs: Any, timeout: float) -> Any:
    return stubs.objects.Get(api_pb2.GetRequest(kind="ConfigMap", name="x"), timeout=timeout)


def test_the_client_waits_as_hinted_and_stays_on_the_busy_master(
    busy_server: tuple[_Busy, str],
) -> None:
    busy, endpoint = busy_server
    # A second endpoint that would answer nothing: failing over to it would be visible.
    transport = Transport([endpoint, "127.0.0.1:1"], credentials=testpki.credentials())
    transport._current = 0
    try:
        transport.call(_get, what="get configmaps/x")
        gaps = [b - a for a, b in zip(busy.calls, busy.calls[1:], strict=False)]
        assert len(busy.calls) == 4
        assert all(0.2 <= g <= 0.4 + 0.2 for g in gaps), gaps  # hint + jitter up to the hint
        assert transport.current() == endpoint
    finally:
        transport.close()


def test_the_client_gives_up_with_too_many_requests_at_its_deadline(
    busy_server: tuple[_Busy, str],
) -> None:
    busy, endpoint = busy_server
    busy.refusals = 1000
    transport = Transport(
        [endpoint], credentials=testpki.credentials(), policy=RetryPolicy(timeout=1.0)
    )
    try:
        start = time.monotonic()
        with pytest.raises(errors.TooManyRequests) as err:
            transport.call(_get, what="get configmaps/x")
        assert time.monotonic() - start < 1.5
        assert err.value.retry_after == 0.2 and "workload-low" in err.value.message
        assert 2 <= len(busy.calls) <= 6
    finally:
        transport.close()


# -- the configuration file ----------------------------------------------------------------------


def test_a_flow_config_file_adds_a_level_and_a_schema(tmp_path: Any) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "levels:\n- {name: batch, shares: 10, queues: 16, handSize: 4, queueLength: 20}\n"
        "schemas:\n- {name: ci, precedence: 700, level: batch, users: [ci-bot],"
        " verbs: [create]}\n"
    )
    flow = FlowControl(apply_file(Settings(), str(path)))
    assert flow.classify(Identity("ci-bot"), "create", "configmaps")[0].name == "batch"
    assert flow.classify(Identity("ci-bot"), "get", "configmaps")[0].name == "global-default"
    assert flow.levels["batch"].queues is not None and len(flow.levels["batch"].queues.queues) == 16


@pytest.mark.parametrize(
    "text,message",
    [
        ("levels:\n- {name: x, share: 1}\n", r"levels\[0\]: unknown field 'share'"),
        ("levels:\n- {name: x, shares: many}\n", r"levels\[0\].shares: must be int"),
        ("schemas:\n- {name: s, precedence: 1}\n", r"schemas\[0\]: level is required"),
        ("schemas:\n- {name: s, precedence: 1, level: nope}\n", "'nope' does not exist"),
        ("schemas:\n- {name: s, precedence: 1, level: system, users: [1]}\n", "list of strings"),
        ("other: 1\n", "levels and schemas only"),
    ],
)
def test_a_bad_flow_config_file_is_refused_naming_the_entry(
    tmp_path: Any, text: str, message: str
) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        apply_file(Settings(), str(path))


def test_the_master_refuses_a_bad_flow_flag_with_one_line(tmp_path: Any) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("levels:\n- {name: x, shares: 0}\n")
    for flags, message in (
        (["--flow-config", str(path)], "shares (0) must be >= 1"),
        (["--max-requests-inflight", "-1"], "--max-requests-inflight: -1 is below the minimum 0"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "hakube", "master", "--name", "m", "--data-dir",
             str(tmp_path / "d"), "--raft-listen", "127.0.0.1:1", *flags],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
