"""fsync-before-ack for pysyncobj's file journal (``hakube master --fsync``, the default), and
files that survive a power loss in every mode.

pysyncobj writes its log into an mmap that it never syncs, so an acknowledged write survives a
process crash but not a power loss. In this mode nothing leaves a member while its journal holds
unsynced changes: every outgoing Raft message first waits for ``fdatasync`` of the journal. So

* a follower's append-entries answer (which is what lets the leader count it towards a commit)
  is sent only once the entries it acknowledges are on disk;
* the leader's own copy is on disk before it sends the entries out, hence before it can count a
  majority, commit, apply and answer the client.

A committed, acknowledged write is therefore on the disks of a majority, as with etcd. Group
commit keeps the cost to about one sync per Raft round trip per member, not one per write. A
member alone (a one-master cluster) sends nothing before it commits, so there every append is
synced before it returns.

In every mode, with or without ``--fsync`` (``install_file_hooks`` and ``DurableMeta``):
- the term and vote: pysyncobj writes them to a side file and renames it without syncing; Raft
  requires them durable before any vote is sent, or a member that loses power can vote twice in
  one term — a safety violation, not just lost writes;
- every file pysyncobj replaces by renaming — the compaction dump (written by a forked child)
  and a snapshot received from the leader — is synced before the rename and its directory after,
  so a crash never leaves a renamed, half-written dump in place of the old, good one.

``fdatasync`` on the journal's file descriptor, not ``mmap.flush``: on Linux both write back the
same dirty page-cache pages, but ``os.fdatasync`` releases the GIL while the disk works, so the API
server's event loop keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from pysyncobj import serializer as ps_serializer
from pysyncobj.pickle import dumps

from hakube.store import failpoints

log = logging.getLogger("hakube.store")
EXIT_STORAGE_FAILED = 74
"""Exit status of a master that stopped because its disk failed it (EX_IOERR)."""


def fail_stop(reason: str) -> NoReturn:
    """End the process now: a member that cannot make its Raft state durable must not go on
    voting or acknowledging (as etcd panics on a WAL write error); its supervisor restarts it."""
    log.critical("%s; stopping this master", reason)
    logging.shutdown()
    os._exit(EXIT_STORAGE_FAILED)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(src: str, dst: str) -> None:
    """Rename ``src`` over ``dst`` so that after a power loss ``dst`` is either the old file or
    the whole new one: sync the data, rename, sync the directory."""
    # pysyncobj names a received snapshot "<dump>.1.tmp" and its own new dump "<dump>.tmp".
    point = "snapshot" if src.endswith(".1.tmp") else "dump" if src.endswith(".tmp") else ""
    fsync_path(src)
    if point:
        failpoints.hit(f"{point}-before-rename")
    os.replace(src, dst)
    if point:
        failpoints.hit(f"{point}-after-rename")
    fsync_path(os.path.dirname(os.path.abspath(dst)))


def install_file_hooks() -> None:
    """Make pysyncobj's dump and received-snapshot renames durable (idempotent, process-wide;
    inherited by the forked compaction child)."""
    ps_serializer.atomicReplace = durable_replace


class DurableMeta:
    """Term and vote written with fsync, rename and directory fsync, whatever the mode.

    A member that cannot persist them (a full or failing disk) stops at once: pysyncobj would
    log the error and carry on with the new term or vote in memory only, and answer votes it
    could forget — a safety violation. Fail-stop, as etcd panics on a WAL write error; the
    supervisor (systemd) restarts it once the disk has room.
    """

    def __init__(self, syncobj: Any) -> None:
        self.storer = syncobj._SyncObj__raftLog._FileJournal__metaStorer

    def install(self) -> None:
        path = self.storer.getPath()

        def store(meta: Any) -> None:
            tmp = path + ".tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(dumps(meta))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                fsync_path(os.path.dirname(os.path.abspath(path)))
            except OSError as exc:
                fail_stop(f"cannot persist the Raft term and vote to {path}: {exc}")

        self.storer.storeMeta = store


class DurableJournal:
    """Installs the hooks described in the module docstring on one running SyncObj."""

    def __init__(self, syncobj: Any) -> None:
        self.syncobj = syncobj
        self.journal = syncobj._SyncObj__raftLog
        self.dirty = False
        self.syncs = 0
        """Journal syncs done (metrics, tests)."""
        self.on_sync: Callable[[float], None] | None = None
        """Called (on the Raft thread) with the seconds each sync took (metrics)."""
        self._lock = threading.Lock()

    def install(self) -> None:
        journal = self.journal
        for name in ("add", "clear", "deleteEntriesFrom", "deleteEntriesTo"):
            setattr(journal, name, self._marking(getattr(journal, name)))
        transport = self.syncobj._SyncObj__transport
        transport.send = self._syncing_send(transport.send)

    def sync(self) -> None:
        """Write the journal's changes to disk now, if there are any."""
        with self._lock:
            if not self.dirty:
                return
            self.dirty = False
            # Looked up each time: pysyncobj reopens the file when it grows the journal.
            f = self.journal._FileJournal__journalFile._ResizableFile__f
            started = time.monotonic()
            try:
                os.fdatasync(f.fileno())
            except OSError as exc:
                # After a failed sync the kernel may have dropped the dirty pages: retrying
                # could report success for data that is gone.
                fail_stop(f"cannot sync the Raft journal: {exc}")
            self.syncs += 1
            if self.on_sync is not None:
                self.on_sync(time.monotonic() - started)

    def _marking(self, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            self.dirty = True
            if not self.syncobj._SyncObj__otherNodes:
                self.sync()  # alone: no message will leave before the entry commits
            return result

        return wrapped

    def _syncing_send(self, send: Any) -> Any:
        def wrapped(node: Any, message: Any) -> Any:
            if self.dirty:
                self.sync()
            return send(node, message)

        return wrapped
