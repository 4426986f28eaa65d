"""The state machine on its own: CAS, dedupe, history, snapshots at old revisions, leases, and
determinism (two replicas fed the same log end byte-identical)."""

from __future__ import annotations

import pickle
import random

import pytest

from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.fsm import OutOfRange, StoreFSM


def apply(f: StoreFSM, *ops: store.Op) -> list[store.Result]:
    return f.apply_batch(list(ops), _doApply=True)


def create(
    name: str,
    value: bytes = b"v",
    ns: str = "default",
    rid: str = "",
    labels: dict[str, str] | None = None,
    lease: int = 0,
) -> store.Op:
    return ops.wire(
        ops.Create(rid, "Pod", ns, name, value, labels or {}, {"metadata.name": name}, lease)
    )


def test_create_then_create_again_is_exists() -> None:
    f = StoreFSM()
    [(code, rev, _)] = apply(f, create("a"))
    assert (code, rev) == (store.OK, 1)
    [(code, rev, _)] = apply(f, create("a"))
    assert (code, rev) == (store.EXISTS, 1)
    assert f.revision == 1


def test_update_is_compare_and_swap_on_the_modification_revision() -> None:
    f = StoreFSM()
    apply(f, create("a"))
    upd = ops.wire(ops.Update("", "Pod", "default", "a", b"v2", {}, {}, 1))
    assert apply(f, upd)[0][:2] == (store.OK, 2)
    assert apply(f, upd)[0][:2] == (store.CONFLICT, 2)  # stale expectation
    rec = f.get("Pod", "default", "a")
    assert rec is not None and rec.value == b"v2" and rec.create_rev == 1 and rec.mod_rev == 2


def test_update_and_delete_of_missing_object_are_not_found() -> None:
    f = StoreFSM()
    assert (
        apply(f, ops.wire(ops.Update("", "Pod", "default", "x", b"", {}, {}, 0)))[0][0]
        == store.NOT_FOUND
    )
    assert apply(f, ops.wire(ops.Delete("", "Pod", "default", "x", 0)))[0][0] == store.NOT_FOUND
    assert f.revision == 0


def test_delete_with_stale_revision_conflicts_and_keeps_object() -> None:
    f = StoreFSM()
    apply(f, create("a"), ops.wire(ops.Update("", "Pod", "default", "a", b"v2", {}, {}, 1)))
    assert apply(f, ops.wire(ops.Delete("", "Pod", "default", "a", 1)))[0][0] == store.CONFLICT
    assert f.get("Pod", "default", "a") is not None
    assert apply(f, ops.wire(ops.Delete("", "Pod", "default", "a", 2)))[0][0] == store.OK
    assert f.get("Pod", "default", "a") is None


def test_a_retried_request_id_returns_the_first_result_without_applying_twice() -> None:
    f = StoreFSM()
    first = apply(f, create("a", rid="req-1"))
    apply(f, ops.wire(ops.Update("", "Pod", "default", "a", b"changed", {}, {}, 1)))
    again = apply(f, create("a", rid="req-1"))
    assert again == first
    assert f.revision == 2


def test_dedupe_table_is_bounded() -> None:
    f = StoreFSM(dedupe_size=3)
    apply(f, *(create(f"p{i}", rid=f"r{i}") for i in range(5)))
    assert list(f.requests) == ["r2", "r3", "r4"]


def test_history_keeps_events_in_order_and_reports_compaction() -> None:
    f = StoreFSM(history_size=3)
    apply(f, *(create(f"p{i}") for i in range(5)))
    assert [e.rev for e in f.history] == [3, 4, 5]
    assert f.compacted_rev == 2
    with f.lock:
        assert [e.name for e in f.events_since(2)] == ["p2", "p3", "p4"]
        assert [e.name for e in f.events_since(4)] == ["p4"]
        with pytest.raises(OutOfRange):
            list(f.events_since(1))


def test_snapshot_at_an_older_revision_undoes_later_changes() -> None:
    f = StoreFSM()
    apply(f, create("a", b"a1"), create("b", b"b1"))  # revs 1, 2
    apply(f, ops.wire(ops.Update("", "Pod", "default", "a", b"a2", {}, {}, 1)))  # rev 3
    apply(f, ops.wire(ops.Delete("", "Pod", "default", "b", 0)))  # rev 4
    apply(f, create("c", b"c1"))  # rev 5
    rev, items = f.snapshot("Pod", "default", 2)
    assert rev == 2
    assert [(k[1], r.value) for k, r in items] == [("a", b"a1"), ("b", b"b1")]
    _, now = f.snapshot("Pod", None)
    assert [(k[1], r.value) for k, r in now] == [("a", b"a2"), ("c", b"c1")]


def test_snapshot_before_compaction_is_out_of_range() -> None:
    f = StoreFSM(history_size=2)
    apply(f, *(create(f"p{i}") for i in range(4)))
    with pytest.raises(OutOfRange):
        f.snapshot("Pod", None, 1)


def test_revoking_or_expiring_a_lease_deletes_attached_objects() -> None:
    f = StoreFSM()
    touched: list[int] = []
    f.lease_touched = touched.append
    assert apply(f, ops.wire(ops.LeaseGrant("g1", 7, 10)))[0][0] == store.OK
    assert apply(f, create("held", lease=7), create("free"))[0][0] == store.OK
    assert apply(f, create("orphan", lease=99))[0][0] == store.LEASE_NOT_FOUND
    assert apply(f, ops.wire(ops.LeaseKeepalive(7)))[0][0] == store.OK
    assert touched == [7, 7]
    code, _, deleted = apply(f, ops.wire(ops.LeasesExpired((7,))))[0]
    assert (code, deleted) == (store.OK, 1)  # the answer counts the objects deleted
    assert f.get("Pod", "default", "held") is None
    assert f.get("Pod", "default", "free") is not None
    assert apply(f, ops.wire(ops.LeaseKeepalive(7)))[0][0] == store.LEASE_NOT_FOUND
    assert [e.type for e in f.history][-1] == store.DELETED
    apply(f, ops.wire(ops.LeaseGrant("g2", 8, 10)), create("a", lease=8), create("b", lease=8))
    assert apply(f, ops.wire(ops.LeaseRevoke(8)))[0] == (store.OK, f.revision, 2)
    assert apply(f, ops.wire(ops.LeaseRevoke(8)))[0][0] == store.LEASE_NOT_FOUND


def test_listener_sees_each_batch_once_with_its_revision() -> None:
    f = StoreFSM()
    seen: list[tuple[list[str], int]] = []
    f.listener = lambda events, rev: seen.append(([e.name for e in events], rev))
    apply(f, create("a"), create("b"))
    apply(f, ops.wire(ops.Barrier()))  # barriers produce no events
    assert seen == [(["a", "b"], 2)]


def test_two_replicas_fed_the_same_log_end_identical() -> None:
    rnd = random.Random(7)
    log: list[list[store.Op]] = []
    for _ in range(200):
        batch: list[store.Op] = []
        for _ in range(rnd.randint(1, 5)):
            name = f"p{rnd.randint(0, 20)}"
            choice = rnd.random()
            if choice < 0.4:
                batch.append(create(name, rid=f"r{rnd.randint(0, 50)}"))
            elif choice < 0.8:
                batch.append(
                    (
                        "u",
                        "",
                        "Pod",
                        "default",
                        name,
                        bytes([rnd.randint(0, 255)]),
                        {},
                        {},
                        rnd.randint(0, 30),
                    )
                )
            else:
                batch.append(ops.wire(ops.Delete("", "Pod", "default", name, 0)))
        log.append(batch)
    a, b = StoreFSM(history_size=50), StoreFSM(history_size=50)
    ra = [apply(a, *batch) for batch in log]
    rb = [apply(b, *batch) for batch in log]
    assert ra == rb
    assert pickle.dumps(a._serialize()) == pickle.dumps(b._serialize())


def test_dump_round_trip_restores_everything() -> None:
    a = StoreFSM()
    apply(a, create("a", rid="x"), ops.wire(ops.LeaseGrant("", 3, 5)), create("b", lease=3))
    b = StoreFSM()
    b._deserialize(pickle.loads(pickle.dumps(a._serialize())))
    assert b.revision == a.revision
    assert b.get("Pod", "default", "b").lease == 3  # type: ignore[union-attr]
    assert apply(b, create("a", rid="x")) == [(store.OK, 1, 1)]
