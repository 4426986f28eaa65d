"""A master's data dir: who the members are, seeding it from a snapshot, and reading it offline.

Files (all beside pysyncobj's ``raft.journal``, ``raft.journal.meta`` and ``raft.dump``):

* ``members.json``: this master's name and Raft address, the cluster id and the other members'
  Raft addresses. It is written at first start from the flags and rewritten by the master
  whenever the Raft configuration changes, and from then on it, not ``--peers``, says who the
  peers are. Why: pysyncobj builds its configuration from the constructor's peers, then lets a
  dump and the journal's membership entries override them. Flags that went stale after
  ``members add/remove`` would otherwise bring back removed members or miss added ones until
  the log is replayed.
* ``force-new-cluster.done``: written by ``--force-new-cluster``, so running the same command
  twice by accident is refused instead of cutting the cluster down to one member again.
* ``pre-force-new-cluster-<time>/``: the files that force-new-cluster replaced, kept for forensics.

Seeding writes a pysyncobj dump (gzip of a pickle: ``([syncobj fields, fsm state], last entry,
previous entry, cluster nodes)``) holding the restored state and two no-op entries, so a master
started on the dir loads it on its first tick, exactly as after its own log compaction.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pysyncobj import pickle as ps_pickle
from pysyncobj.journal import FileJournal
from pysyncobj.node import TCPNode

from hakube.api.timestamps import rfc3339
from hakube.store import encoding
from hakube.store.durable import durable_replace
from hakube.store.fsm import StoreFSM

MEMBERS_FILE = "members.json"
FORCE_FLAG = "force-new-cluster.done"
JOURNAL = "raft.journal"
DUMP = "raft.dump"
_NO_OP = b"\x01"  # pysyncobj _COMMAND_TYPE.NO_OP
_REGULAR = 0  # pysyncobj _COMMAND_TYPE.REGULAR


class DataDirError(Exception):
    """The data dir cannot be used as asked; the message says why and what to do."""


@dataclass
class Membership:
    """The content of members.json."""

    name: str
    raft: str
    peers: dict[str, str] = field(default_factory=dict)
    """Other members: name -> Raft address."""
    cluster_id: str = ""


def private_mode_problem(path: str, what: str) -> str | None:
    """Why ``path`` (a file or dir holding cluster secrets or state) is not private, with the
    fix, or None when only its owner may access it."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if not mode & 0o077:
        return None
    want = "700" if os.path.isdir(path) else "600"
    return (
        f"{what} {path} is accessible by group or others (mode {mode:03o}); run "
        f"`chmod {want} {path}`"
    )


def ensure_private_dir(path: str, what: str = "data dir") -> None:
    """Create ``path`` 0700 if it is missing; refuse one that group or others may access
    (older versions created data dirs 0755)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    problem = private_mode_problem(path, what)
    if problem is not None:
        raise DataDirError(problem)


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, 0600 from the first byte, fsynced."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    durable_replace(tmp, path)


def read_members(data_dir: str) -> Membership | None:
    """members.json, or None when the dir has none yet."""
    path = os.path.join(data_dir, MEMBERS_FILE)
    try:
        with open(path) as f:
            raw = json.load(f)
        return Membership(
            name=raw["name"],
            raft=raw["raft"],
            peers=dict(raw["peers"]),
            cluster_id=raw.get("cluster_id", ""),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataDirError(
            f"{path} is unreadable ({exc}); restore it from a backup or "
            "start the master on a fresh data dir"
        ) from exc


def write_members(data_dir: str, m: Membership) -> None:
    """Replace members.json atomically (fsynced: it decides whom we talk to after a crash)."""
    path = os.path.join(data_dir, MEMBERS_FILE)
    body = json.dumps(
        {
            "name": m.name,
            "raft": m.raft,
            "peers": dict(sorted(m.peers.items())),
            "cluster_id": m.cluster_id,
            "updated": rfc3339(),
        },
        indent=1,
    )
    write_private(path, (body + "\n").encode())


def has_raft_data(data_dir: str) -> bool:
    """Whether the dir already holds Raft state (a journal or a dump)."""
    return any(os.path.exists(os.path.join(data_dir, f)) for f in (JOURNAL, DUMP))


def seed(
    data_dir: str,
    state: dict[str, Any],
    *,
    name: str,
    raft: str,
    api: str,
    peers: dict[str, str],
    term: int,
    cluster_id: str,
    removed: dict[str, str] | None = None,
) -> None:
    """Make ``data_dir`` (which must hold no Raft data) start as a member of a cluster of
    ``name`` + ``peers`` whose store is ``state``. Every member of a new cluster is seeded from
    the same state and term, so their logs agree from the first entry, and their stores must be
    equal too: pass the same ``api`` (normally "") to all of them; each master registers its API
    address through the log once it runs."""
    if has_raft_data(data_dir):
        raise DataDirError(
            f"data dir {data_dir} already holds Raft data; restore into an empty or new directory"
        )
    ensure_private_dir(data_dir)
    fsm = StoreFSM()
    fsm.load_captured(state)
    fsm.members = {name: (raft, api), **{p: (addr, "") for p, addr in peers.items()}}
    fsm.removed = dict(removed or {})
    fsm.cluster_id = cluster_id
    cluster = {TCPNode(a) for a in [raft, *peers.values()]}
    dump = (
        [{"_SyncObj__enabledCodeVersion": 0}, fsm._serialize()],
        (_NO_OP, 2, term),
        (_NO_OP, 1, term),
        cluster,
    )
    tmp = os.path.join(data_dir, DUMP + ".seed")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        encoding.write_dump(dump, f)
        f.flush()
        os.fsync(f.fileno())
    durable_replace(tmp, os.path.join(data_dir, DUMP))
    write_members(
        data_dir, Membership(name=name, raft=raft, peers=dict(peers), cluster_id=cluster_id)
    )


@dataclass
class LocalState:
    """What a data dir holds, read without running Raft."""

    fsm: StoreFSM
    term: int
    last_index: int
    commit_index: int
    applied_beyond_commit: int
    """Entries after the recorded commit index that were applied anyway (see load_local)."""


def load_local(data_dir: str) -> LocalState:
    """Rebuild the store from the dump and *every* entry in the journal, including entries past
    the commit index this member had heard of. Used by force-new-cluster: an entry the old
    leader committed (and acknowledged) may be in this log although the commit index recorded
    here lags; with the other members gone, this log is the only record, so all of it is kept
    (etcd's --force-new-cluster does the same)."""
    fsm = StoreFSM()
    start = 0
    term = 0
    dump_path = os.path.join(data_dir, DUMP)
    if os.path.exists(dump_path):
        try:
            with open(dump_path, "rb") as f, gzip.GzipFile(fileobj=f) as g:
                data = ps_pickle.load(g)
            fsm._deserialize(data[0][1])
            start, term = data[1][1], data[1][2]
        except Exception as exc:  # a corrupt dump: say so, never guess
            raise DataDirError(f"{dump_path} is unreadable ({exc!r})") from exc
    journal_path = os.path.join(data_dir, JOURNAL)
    last, commit, beyond = start, start, 0
    if os.path.exists(journal_path):
        journal = FileJournal(journal_path)
        try:
            commit = max(start, journal.getRaftCommitIndex())
            term = max(term, journal.getCurrentTerm())
            for i in range(len(journal)):
                command, idx, entry_term = journal[i]
                term = max(term, entry_term)
                if idx <= start:
                    continue
                last = idx
                if command[0] == _REGULAR:
                    _apply_entry(fsm, command)
                    if idx > commit:
                        beyond += 1
        finally:
            journal._destroy()
    return LocalState(
        fsm=fsm, term=term, last_index=last, commit_index=commit, applied_beyond_commit=beyond
    )


def _apply_entry(fsm: StoreFSM, command: bytes) -> None:
    cmd = ps_pickle.loads(command[1:])
    if isinstance(cmd, tuple) and len(cmd) >= 2:
        fsm.apply_batch(*cmd[1], _doApply=True)


def force_new_cluster(data_dir: str, *, name: str, raft: str, api: str) -> str:
    """Rewrite ``data_dir`` so its master forms a cluster of itself alone, keeping all data.
    Old files move to a ``pre-force-new-cluster-*`` dir; other members' names become
    tombstones. Returns a one-line summary. Refuses when the flag file shows it already ran."""
    flag = os.path.join(data_dir, FORCE_FLAG)
    if os.path.exists(flag):
        with open(flag) as f:
            when = f.readline().strip()
        raise DataDirError(
            f"--force-new-cluster already ran on {data_dir} ({when}); start the master without "
            f"it, or delete {flag} if you really mean to cut the cluster down to this master "
            "again"
        )
    if not has_raft_data(data_dir):
        raise DataDirError(f"--force-new-cluster: {data_dir} holds no Raft data to keep")
    local = load_local(data_dir)
    state = local.fsm.capture()
    removed = dict(state["removed"])
    for other, (addr, _) in state["members"].items():
        if other != name:
            removed[other] = addr
    old = read_members(data_dir)
    if old is not None:
        for other, addr in old.peers.items():
            removed.setdefault(other, addr)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    backup = os.path.join(data_dir, f"pre-force-new-cluster-{stamp}")
    os.makedirs(backup)
    for entry in os.listdir(data_dir):
        if entry.startswith(("raft.", MEMBERS_FILE)):
            shutil.move(os.path.join(data_dir, entry), os.path.join(backup, entry))
    # A higher term than any old entry: a stale old member can never win an election here.
    seed(
        data_dir,
        state,
        name=name,
        raft=raft,
        api=api,
        peers={},
        term=local.term + 1,
        cluster_id=uuid.uuid4().hex[:16],
        removed=removed,
    )
    summary = (
        f"forced a new cluster of {name} alone at revision {state['revision']} "
        f"(log index {local.last_index}, {local.applied_beyond_commit} entries past the "
        f"recorded commit index kept); removed {sorted(removed)}; old files in {backup}"
    )
    with open(flag, "w") as f:
        f.write(rfc3339() + "\n" + summary + "\n")
    return summary
