"""fsync-before-ack for pysyncobj's file journal (``hakube master --fsync``, the default), and
files that survive a power loss in every mode.

pysyncobj writes its log into an mmap that it never syncs, so an acknowledged write survives a
process crash but not a power loss. In this mode (``DurableJournal``):

* a member that is not the leader sends nothing while its journal holds unsynced changes: every
  outgoing message first waits for ``fdatasync`` of the journal. So a follower's append-entries
  answer (what lets the leader count it towards a commit) is sent only once the entries it
  acknowledges are on disk, and a candidate's vote request describes a log it has on disk;
* the leader sends new entries at once and syncs its own journal in parallel, on a sync thread
  (Raft thesis section 10.2.1; etcd's leader writes its WAL the same way). Its commit step then
  counts the leader towards a majority only for the entries its last completed sync covers
  (``durable_commit_index``); a majority of followers alone may commit without it.

A committed, acknowledged write is therefore on the disks of a majority, as with etcd, while a
write costs one sync on the critical path (the followers', overlapped with the leader's) instead
of two in series. Group commit keeps the cost to about one sync per Raft round trip per member,
not one per write. A member alone (a one-master cluster) sends nothing before it commits, so
there every append is synced before it returns.

Why the commit step is the hook (pysyncobj is not forked): pysyncobj's leader computes its
commit index in ``_onTick`` by counting itself plus every follower whose match index covers an
entry, and then stores it through the journal's ``setRaftCommitIndex`` before anything is
applied or answered. Wrapping that one call lowers the index to what a majority holds *durably*
before the same tick applies entries, and every later tick recomputes from the lowered value, so
an entry is applied (and its client answered) only once committed under the durable rule. The
leader's messages that skip the pre-send sync are exactly those that claim nothing about its own
disk: append-entries (entries plus a commit index that already obeys the rule) and its answer
to a forwarded proposal (the log index it was given).

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


LEADER = 2
"""pysyncobj's _RAFT_STATE.LEADER."""
UNSYNCED_LEADER_MESSAGES = frozenset({"append_entries", "apply_command_response"})
"""What the leader may send before its journal is synced (see the module docstring)."""


def durable_commit_index(
    commit: int,
    proposed: int,
    leader_synced: int,
    follower_match: list[int],
    term_at: Callable[[int], int | None],
    current_term: int,
) -> int:
    """The highest index up to ``proposed`` that a majority holds durably, in the leader's term;
    ``commit`` when there is none beyond it.

    ``proposed`` is pysyncobj's choice (which counts the leader for everything it has appended),
    ``leader_synced`` the last index the leader's own completed sync covers, ``follower_match``
    each follower's acknowledged index (followers acknowledge only synced entries). Raft commits
    only entries of the current term by counting (older ones follow them), and terms never
    decrease along the log, so when the candidate entry is from an older term nothing beyond
    ``commit`` may be committed yet.
    """
    if proposed <= commit:
        return proposed
    held = sorted([leader_synced, *follower_match], reverse=True)
    majority_has = held[len(held) // 2]
    candidate = min(proposed, majority_has)
    if candidate <= commit or term_at(candidate) != current_term:
        return commit
    return candidate


class DurableJournal:
    """Installs the hooks described in the module docstring on one running SyncObj.

    Bookkeeping (under ``_state``, held briefly by both threads): ``_changes`` counts the
    journal's changes, ``_synced_changes`` how many of them the last completed sync covers;
    ``synced_index`` is the last log index known on disk. A truncation (a follower dropping a
    conflicting suffix) bumps ``_epoch`` so that a sync running across it claims nothing. Syncs
    themselves are serialised by ``_sync_lock``.
    """

    def __init__(self, syncobj: Any) -> None:
        self.syncobj = syncobj
        self.journal = syncobj._SyncObj__raftLog
        self.syncs = 0
        """Journal syncs done (metrics, tests)."""
        self.on_sync: Callable[[float], None] | None = None
        """Called (on the Raft or the sync thread) with the seconds each sync took (metrics)."""
        self._index = self._last_index()
        """The journal's last index, as of its last change (kept by the Raft thread)."""
        self.synced_index = self._index
        self._committed = int(self.journal.getRaftCommitIndex())
        """The commit index last stored (pysyncobj overwrites its own before storing it)."""
        self._changes = 0
        self._synced_changes = 0
        self._epoch = 0
        self._waiting = False
        """The leader's commit step held an entry back for our sync: wake it when done."""
        self._state = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def dirty(self) -> bool:
        """The journal holds changes that no completed sync covers."""
        return self._changes != self._synced_changes

    def install(self) -> None:
        journal = self.journal
        for name in ("add", "deleteEntriesTo"):
            setattr(journal, name, self._marking(getattr(journal, name), truncates=False))
        for name in ("clear", "deleteEntriesFrom"):
            setattr(journal, name, self._marking(getattr(journal, name), truncates=True))
        journal.setRaftCommitIndex = self._durable_commit(journal.setRaftCommitIndex)
        transport = self.syncobj._SyncObj__transport
        transport.send = self._syncing_send(transport.send)
        self._thread = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the sync thread (idempotent)."""
        self._closed = True
        self._wake.set()

    def sync(self) -> None:
        """Write the journal's changes to disk now, if there are any; returns once they are."""
        with self._sync_lock:
            with self._state:
                if not self.dirty:
                    return
                changes, index, epoch = self._changes, self._index, self._epoch
            started = time.monotonic()
            # A descriptor of our own: the journal's may be closed by the Raft thread meanwhile
            # (compaction replaces the file); fdatasync writes back the file's dirty pages,
            # whichever descriptor names it.
            fd = os.open(self._path(), os.O_RDONLY)
            try:
                os.fdatasync(fd)
            except OSError as exc:
                # After a failed sync the kernel may have dropped the dirty pages: retrying
                # could report success for data that is gone.
                fail_stop(f"cannot sync the Raft journal: {exc}")
            finally:
                os.close(fd)
            with self._state:
                self._synced_changes = max(self._synced_changes, changes)
                if epoch == self._epoch:
                    self.synced_index = max(self.synced_index, index)
                waiting, self._waiting = self._waiting, False
            self.syncs += 1
            if self.on_sync is not None:
                self.on_sync(time.monotonic() - started)
        if waiting and threading.current_thread() is self._thread:
            notifier = getattr(self.syncobj, "_SyncObj__pipeNotifier", None)
            if notifier is not None:
                notifier.notify()  # the Raft thread recomputes its commit index now

    def _path(self) -> str:
        path = getattr(self.journal, "_path", None)
        if path is None:
            path = self.journal._FileJournal__journalFile._ResizableFile__fileName
        return str(path)

    def _last_index(self) -> int:
        journal = self.journal
        return int(journal[-1][1]) if len(journal) else 0

    def _is_leader(self) -> bool:
        return bool(self.syncobj._SyncObj__raftState == LEADER)

    def _sync_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            if self.dirty:
                failpoints.hit("leader-before-sync")
                self.sync()

    def _marking(self, fn: Any, *, truncates: bool) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)  # the data is in the mmap before it is counted
            last = self._last_index()
            with self._state:
                self._index = last
                if truncates:
                    self._epoch += 1
                    self.synced_index = min(self.synced_index, last)
                self._changes += 1
            if not self.syncobj._SyncObj__otherNodes:
                self.sync()  # alone: no message will leave before the entry commits
            return result

        return wrapped

    def _syncing_send(self, send: Any) -> Any:
        def wrapped(node: Any, message: Any) -> Any:
            if self._is_leader() and message.get("type") in UNSYNCED_LEADER_MESSAGES:
                result = send(node, message)
                if self.dirty:
                    self._wake.set()  # sent first, synced in parallel
                return result
            if self.dirty:
                self.sync()
            return send(node, message)

        return wrapped

    def _durable_commit(self, store: Any) -> Any:
        so = self.syncobj

        def wrapped(index: int) -> Any:
            if self._is_leader():
                journal = self.journal

                def term_at(i: int) -> int | None:
                    pos = i - journal[0][1] if len(journal) else -1
                    return int(journal[pos][2]) if 0 <= pos < len(journal) else None

                match = so._SyncObj__raftMatchIndex
                with self._state:
                    allowed = durable_commit_index(
                        self._committed,
                        index,
                        self.synced_index,
                        [match.get(n, 0) for n in so._SyncObj__otherNodes],
                        term_at,
                        so._SyncObj__raftCurrentTerm,
                    )
                    if allowed < index:
                        self._waiting = True
                if allowed < index:
                    so._SyncObj__raftCommitIndex = allowed  # before this tick applies anything
                    self._wake.set()
                    index = allowed
            self._committed = index
            return store(index)

        return wrapped
