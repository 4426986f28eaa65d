"""pysyncobj's file journal, made safe against a crash during and around log compaction.

Compaction replaces the oldest journal entries by a dump of the state. pysyncobj does it in two
steps that a crash can separate, and a third that a crash can tear:

1. a forked child writes the new dump and renames it over the old one;
2. the parent drops the journal entries the dump now covers (``deleteEntriesTo``);
3. which it does by clearing the journal file in place and writing the kept entries back.

Killed between 1 and 2, a member restarts with a new dump and a journal that still begins before
it; pysyncobj's loader then finds the journal's first entries differ from the dump's and clears
the whole journal — every entry after the dump point, committed and acknowledged, is gone (found
by tests/store/test_crash_points.py: three masters killed at that point lost a write). Killed
during 3, the journal holds only the entries written back so far.

``SafeFileJournal`` fixes both, without changing the file format:
- dropping entries writes the kept ones to a new file, syncs it and renames it over the journal
  (then syncs the directory), so the journal is always either the old one or the new one;
- on load, when the dump's last two entries are found inside the journal, only the entries before
  them are dropped and the rest kept — also what Raft prescribes when a follower installs a
  snapshot whose last entry it already holds.

And one against a power cut right after the journal is created: pysyncobj writes a new journal's
header and never syncs it, while the first vote's directory fsync (``DurableMeta``) makes its
name durable; a cut then left a zero-length journal that pysyncobj cannot open, so the member
could not start again (found by tests/store/test_power_loss.py on a lazy file system). Opening
the journal syncs it, then its directory.
"""

from __future__ import annotations

import os
from typing import Any

from pysyncobj import journal as ps_journal
from pysyncobj import syncobj as ps_syncobj

from hakube.store import failpoints
from hakube.store.durable import durable_replace, fail_stop, fsync_path

Entry = tuple[Any, int, int]
_ENTRIES, _FILE, _OFFSET = (
    "_FileJournal__journal",
    "_FileJournal__journalFile",
    "_FileJournal__currentOffset",
)
"""FileJournal's private attributes: its entries, its mmap'd file, the end of its records."""


class SafeFileJournal(ps_journal.FileJournal):  # type: ignore[misc]  # untyped library
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._path = path
        self._clear_pending = False
        self._found_at: int | None = None
        try:
            fsync_path(path)
            fsync_path(os.path.dirname(os.path.abspath(path)))
        except OSError as exc:
            fail_stop(f"cannot make the Raft journal {path} durable: {exc}")

    # -- load: keep what follows the dump instead of clearing --------------------------------

    def clear(self) -> None:
        """Called only by the dump loader, always followed by adding the dump's last two
        entries; the decision waits for them (see ``add``)."""
        self._clear_pending = True
        self._found_at = None

    def add(self, command: Any, idx: int, term: int) -> None:
        if self._clear_pending:
            if self._keep_tail((command, idx, term)):
                return
        super().add(command, idx, term)

    def _keep_tail(self, entry: Entry) -> bool:
        """True when ``entry`` (one of the dump's two) is already in place and need not be
        added; otherwise the journal has been really cleared (and the first entry re-added)."""
        entries: list[Entry] = getattr(self, _ENTRIES)
        if self._found_at is None:
            pos = entry[1] - entries[0][1] if entries else -1
            if 0 <= pos < len(entries) - 1 and entries[pos] == entry:
                self._found_at = pos
                return True
            self._really_clear()
            return False
        pos, self._found_at, self._clear_pending = self._found_at, None, False
        if entries[pos + 1] == entry:
            if pos:
                self.deleteEntriesTo(pos)
            return True
        first = entries[pos]
        self._really_clear()
        super().add(*first)
        return False

    def _really_clear(self) -> None:
        self._clear_pending = False
        super().clear()

    # -- compaction: replace the file, never rewrite it in place ------------------------------

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802 - pysyncobj's name
        failpoints.hit("compaction-before-journal-drop")
        kept: list[Entry] = getattr(self, _ENTRIES)[entryTo:]
        tmp = self._path + ".compact"
        for leftover in (tmp, tmp + ".meta"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        fresh = ps_journal.FileJournal(tmp)
        for entry in kept:
            ps_journal.FileJournal.add(fresh, *entry)
        new_file = getattr(fresh, _FILE)
        new_file.flush()
        durable_replace(tmp, self._path)
        new_file._ResizableFile__fileName = self._path  # it reopens by name when it grows
        old_file = getattr(self, _FILE)
        for name in (_FILE, _ENTRIES, _OFFSET):
            setattr(self, name, getattr(fresh, name))
        old_file._destroy()


_original_create = ps_journal.createJournal


def _create_journal(path: str | None) -> Any:
    return _original_create(None) if path is None else SafeFileJournal(path)


def install() -> None:
    """Make every SyncObj created from now on use SafeFileJournal (idempotent)."""
    ps_syncobj.createJournal = _create_journal
