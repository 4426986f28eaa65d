"""The member registry's rules and the snapshot format, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakube.store import datadir, ops, snapshot
from hakube.store.fsm import EXISTS, OK, REMOVED, StoreFSM


def apply(fsm: StoreFSM, *ops: tuple[object, ...]) -> list[tuple[str, int, object]]:
    return fsm.apply_batch(list(ops), _doApply=True)  # type: ignore[no-any-return]


def test_a_removed_name_can_never_be_added_or_registered_again() -> None:
    fsm = StoreFSM()
    assert apply(fsm, ops.wire(ops.MemberAdd("m4", "h:1", "h:2")))[0][0] == OK
    assert apply(fsm, ops.wire(ops.MemberRemove("m4", "h:1")))[0][0] == OK
    assert fsm.removed == {"m4": "h:1"} and "m4" not in fsm.members
    codes = [
        r[0]
        for r in apply(
            fsm,
            ops.wire(ops.MemberAdd("m4", "h:9", "h:8")),
            ops.wire(ops.MemberSelf("m4", "h:1", "h:2")),
        )
    ]
    assert codes == [REMOVED, REMOVED]


def test_two_members_cannot_share_a_raft_address_and_the_first_cluster_id_wins() -> None:
    fsm = StoreFSM()
    apply(fsm, ops.wire(ops.MemberSelf("m1", "h:1", "a:1")))
    assert apply(fsm, ops.wire(ops.MemberAdd("m2", "h:1", "a:2")))[0][:3:2] == (EXISTS, "m1")
    assert apply(fsm, ops.wire(ops.ClusterId("one")), ops.wire(ops.ClusterId("two")))[1][2] == "one"
    # Member operations change no object revision (watchers see nothing).
    assert fsm.revision == 0


def test_a_snapshot_round_trips_and_any_flipped_byte_is_caught(tmp_path: Path) -> None:
    fsm = StoreFSM()
    apply(
        fsm,
        ops.wire(ops.LeaseGrant("r1", 7, 30)),
        ops.wire(
            ops.Create("r2", "ConfigMap", "default", "a", b"\x00bytes", {"l": "v"}, {"f": "x"}, 7)
        ),
        ops.wire(ops.Create("r3", "Namespace", "", "default", b"ns", {}, {}, 0)),
        ops.wire(ops.MemberSelf("m1", "h:1", "a:1")),
    )
    data = snapshot.encode(fsm.capture(), term=3, raft_index=9, created_by="m1")
    snap = snapshot.decode(data)
    assert snap.meta["revision"] == 2 and snap.meta["objects"] == {"ConfigMap": 1, "Namespace": 1}
    restored = StoreFSM()
    restored.load_captured(snap.state)
    rec = restored.get("ConfigMap", "default", "a")
    assert rec is not None and (rec.value, rec.labels, rec.lease) == (b"\x00bytes", {"l": "v"}, 7)
    assert restored.leases[7][1] == {("ConfigMap", "default", "a")}
    assert restored.members == {"m1": ("h:1", "a:1")} and restored.revision == 2
    for pos in range(len(snapshot.MAGIC), len(data), max(1, len(data) // 40)):
        bad = bytearray(data)
        bad[pos] ^= 0x55
        with pytest.raises(snapshot.SnapshotError):
            snapshot.decode(bytes(bad))


def test_a_seeded_data_dir_reads_back_offline_with_all_objects(tmp_path: Path) -> None:
    fsm = StoreFSM()
    apply(fsm, ops.wire(ops.Create("r", "ConfigMap", "default", "a", b"v", {}, {}, 0)))
    datadir.seed(str(tmp_path), fsm.capture(), name="m1", raft="h:1", api="", peers={"m2": "h:2"},
                 term=4, cluster_id="c1")  # fmt: skip
    local = datadir.load_local(str(tmp_path))
    assert local.fsm.get("ConfigMap", "default", "a") is not None and local.term == 4
    assert datadir.read_members(str(tmp_path)) == datadir.Membership("m1", "h:1", {"m2": "h:2"},
                                                                       "c1")  # fmt: skip
    with pytest.raises(datadir.DataDirError, match="already holds Raft data"):
        datadir.seed(str(tmp_path), fsm.capture(), name="m1", raft="h:1", api="", peers={},
                     term=1, cluster_id="c2")  # fmt: skip
