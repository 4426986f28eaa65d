"""The lazy file system keeps, across a power cut, exactly what hakube/testing/lazyfs/model.py
says: synced bytes under names made durable by a directory fsync, and nothing else. Real FUSE
mounts (root, /dev/fuse, libfuse2)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.store.durable import durable_replace, fsync_path
from hakube.testing.lazyfs import LazyFS, unavailable_reason
from hakube.testing.lazyfs.mount import is_mounted
from tests.conftest import require

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[LazyFS]:
    require(unavailable_reason())
    with LazyFS(str(tmp_path / "disk"), str(tmp_path / "mnt")) as lazy:
        yield lazy
    assert not is_mounted(str(tmp_path / "mnt"))


def _write(path: Path, data: bytes, *, sync: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())


def test_unsynced_data_is_lost_and_synced_data_kept(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "kept", b"synced", sync=True)
    _write(m / "grown", b"base", sync=True)
    fsync_path(str(m))
    with open(m / "kept", "r+b") as f:
        f.write(b"SYNCED, then overwritten without a sync")
    with open(m / "grown", "ab") as f:
        f.write(b" + an unsynced tail")
    assert (m / "grown").read_bytes() == b"base + an unsynced tail"
    fs.power_cycle()
    assert (m / "kept").read_bytes() == b"synced"
    assert (m / "grown").read_bytes() == b"base"
    assert (Path(fs.backing) / "kept").read_bytes() == b"synced"  # the "disk" itself


def test_a_new_name_needs_a_directory_fsync(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "synced-file-only", b"data", sync=True)
    fs.power_cycle()
    assert not (m / "synced-file-only").exists()  # its name was never made durable

    _write(m / "named-late", b"v1", sync=True)
    with open(m / "named-late", "ab") as f:
        f.write(b" and more")
    fsync_path(str(m))  # the name now durable: with the bytes synced so far
    fs.power_cycle()
    assert (m / "named-late").read_bytes() == b"v1"


def test_rename_and_unlink_without_a_directory_fsync_are_undone(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "old", b"old", sync=True)
    _write(m / "gone", b"gone", sync=True)
    fsync_path(str(m))
    _write(m / "new.tmp", b"new", sync=True)
    os.replace(m / "new.tmp", m / "old")
    os.unlink(m / "gone")
    assert (m / "old").read_bytes() == b"new"
    fs.power_cycle()
    assert (m / "old").read_bytes() == b"old"
    assert (m / "gone").read_bytes() == b"gone"
    assert not (m / "new.tmp").exists()


def test_durable_replace_survives_a_cut(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "f", b"first", sync=True)
    fsync_path(str(m))
    _write(m / "f.tmp", b"second", sync=False)  # durable_replace syncs it
    durable_replace(str(m / "f.tmp"), str(m / "f"))
    fs.power_cycle()
    assert (m / "f").read_bytes() == b"second"
    assert sorted(os.listdir(m)) == ["f"]


def test_a_directory_made_durable_by_its_parent_is_empty_until_fsynced_itself(
    fs: LazyFS,
) -> None:
    m = Path(fs.mountpoint)
    (m / "d").mkdir()
    (m / "e").mkdir()
    for d in ("d", "e"):
        _write(m / d / "f", b"x", sync=True)
    fsync_path(str(m))
    fsync_path(str(m / "e"))
    (m / "never").mkdir()
    fs.power_cycle()
    assert os.listdir(m / "d") == []
    assert (m / "e" / "f").read_bytes() == b"x"
    assert not (m / "never").exists()


def test_mmap_writes_count_once_synced(fs: LazyFS) -> None:
    """What pysyncobj does with its journal: map, grow, write, fdatasync."""
    m = Path(fs.mountpoint)
    _write(m / "journal", bytes(16), sync=True)
    fsync_path(str(m))
    with open(m / "journal", "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
        mm[0:4] = b"abcd"
        mm.resize(64)
        mm[60:64] = b"tail"
        os.fdatasync(f.fileno())
        mm[4:8] = b"lost"
        mm.close()
    fs.power_cycle()
    data = (m / "journal").read_bytes()
    assert len(data) == 64
    assert data[:8] == b"abcd\0\0\0\0" and data[60:] == b"tail"


def test_truncate_and_pwrite_are_volatile_until_synced(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "f", b"0123456789", sync=True)
    fsync_path(str(m))
    fd = os.open(m / "f", os.O_RDWR)
    try:
        os.ftruncate(fd, 4)
        os.pwrite(fd, b"xy", 6)
        assert os.pread(fd, 16, 0) == b"0123\0\0xy"
        os.fdatasync(fd)
        os.ftruncate(fd, 2)
    finally:
        os.close(fd)
    fs.power_cycle()
    assert (m / "f").read_bytes() == b"0123\0\0xy"


def test_a_file_replaced_while_open_keeps_working_through_its_handle(fs: LazyFS) -> None:
    m = Path(fs.mountpoint)
    _write(m / "j", b"old", sync=True)
    with open(m / "j", "r+b") as old:
        _write(m / "j.new", b"new", sync=True)
        os.replace(m / "j.new", m / "j")
        old.seek(0)
        assert old.read() == b"old"
        old.write(b"!")
        old.flush()
        os.fsync(old.fileno())  # an orphan: synced, but no name reaches it
    assert (m / "j").read_bytes() == b"new"
    assert sorted(os.listdir(m)) == ["j"]
