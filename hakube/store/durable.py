"""fsync-before-ack for pysyncobj's file journal (``hakube master --fsync``).

pysyncobj writes its log into an mmap that it never syncs, so an acknowledged write survives a
process crash but not a power loss. In this mode nothing leaves a member while its journal holds
unsynced changes: every outgoing Raft message first waits for ``fdatasync`` of the journal. So

* a follower's append-entries answer (which is what lets the leader count it towards a commit)
  is sent only once the entries it acknowledges are on disk;
* the leader's own copy is on disk before it sends the entries out, hence before it can count a
  majority, commit, apply and answer the client.

A committed, acknowledged write is therefore on the disks of a majority, as with etcd. Group
commit keeps the cost to about one sync per Raft round trip per member, not one per write.

Also made durable: the term and vote (pysyncobj writes them to a side file and renames it without
syncing; Raft requires them durable before any vote is sent), and the compaction dump, which is
synced (file and directory) before the journal entries it replaces are dropped.

``fdatasync`` on the journal's file descriptor, not ``mmap.flush``: on Linux both write back the
same dirty page-cache pages, but ``os.fdatasync`` releases the GIL while the disk works, so the API
server's event loop keeps serving meanwhile.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from pysyncobj.pickle import dumps


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableJournal:
    """Installs the hooks described in the module docstring on one running SyncObj."""

    def __init__(self, syncobj: Any, dump_file: str) -> None:
        self.syncobj = syncobj
        self.dump_file = dump_file
        self.data_dir = os.path.dirname(os.path.abspath(dump_file))
        self.journal = syncobj._SyncObj__raftLog
        self.dirty = False
        self.syncs = 0
        """Journal syncs done (metrics, tests)."""
        self._lock = threading.Lock()

    def install(self) -> None:
        journal = self.journal
        for name in ("add", "clear", "deleteEntriesFrom"):
            setattr(journal, name, self._marking(getattr(journal, name)))
        journal.deleteEntriesTo = self._before_compaction_drop(journal.deleteEntriesTo)
        meta = journal._FileJournal__metaStorer
        meta.storeMeta = self._durable_meta(meta)
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
            os.fdatasync(f.fileno())
            self.syncs += 1

    def _marking(self, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            self.dirty = True
            return result

        return wrapped

    def _syncing_send(self, send: Any) -> Any:
        def wrapped(node: Any, message: Any) -> Any:
            if self.dirty:
                self.sync()
            return send(node, message)

        return wrapped

    def _before_compaction_drop(self, drop: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            # The forked child wrote and renamed the dump; make both durable before the journal
            # forgets the entries the dump now stands for.
            if os.path.exists(self.dump_file):
                _fsync_path(self.dump_file)
                _fsync_path(self.data_dir)
            result = drop(*args, **kwargs)
            self.dirty = True
            return result

        return wrapped

    def _durable_meta(self, storer: Any) -> Any:
        path = storer.getPath()

        def store(meta: Any) -> None:
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(dumps(meta))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_path(os.path.dirname(os.path.abspath(path)))

        return store
