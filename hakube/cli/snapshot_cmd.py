"""``hakube snapshot save|inspect|restore``: backups of the store and seeding new clusters.

``save`` streams a snapshot from any master (consistent at one revision, after a read barrier),
verifies it and only then gives it its final name. ``inspect`` verifies the checksum and prints
the metadata. ``restore`` seeds an empty data dir; run it once per master of the new cluster with
the same snapshot and matching --peers, then start the masters (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hakube.cli.admin import MastersSettings
from hakube.client import errors
from hakube.client.ops import OpsClient, split_servers
from hakube.master.settings import parse_peers
from hakube.pki.tls import TlsFiles
from hakube.settings import add_actions, setting
from hakube.store import datadir, snapshot
from hakube.store.raft import RaftSettings


@dataclass(frozen=True)
class SnapshotSave(MastersSettings):
    """``hakube snapshot save``."""

    file: str = setting("", operand=True, required=True)
    """Where to write the snapshot."""
    timeout: float = setting(120.0, minimum=0)
    """Seconds the save may take."""


@dataclass(frozen=True)
class SnapshotInspect:
    """``hakube snapshot inspect``."""

    file: str = setting("", operand=True, required=True)
    """The snapshot to verify and describe."""
    output: str = setting("table", aliases=("-o",), choices=("table", "json"))
    """table: for people; json: the metadata as one object."""


@dataclass(frozen=True)
class SnapshotRestore:
    """``hakube snapshot restore``: the new member's names and addresses are checked as the
    master checks its own (``RaftSettings.validate``)."""

    file: str = setting("", operand=True, required=True)
    """The snapshot to seed the data dir from."""
    data_dir: str = setting("", required=True, metavar="DIR")
    """The new data dir (must hold no Raft data)."""
    name: str = setting("", required=True)
    """This master's name in the new cluster."""
    raft_listen: str = setting("", required=True, metavar="HOST:PORT")
    """This master's Raft HOST:PORT in the new cluster."""
    peers: dict[str, str] = setting({}, parse=parse_peers, metavar="NAME=HOST:PORT,...")
    """The other new masters: NAME=HOST:PORT,... (their Raft addresses)."""

    def validate(self) -> None:
        # Only the names and addresses are checked here; no TLS material is read.
        RaftSettings(
            name=self.name,
            raft_address=self.raft_listen,
            peers=self.peers,
            data_dir=self.data_dir,
            tls=TlsFiles("", "", ""),
        ).validate()


Action = SnapshotSave | SnapshotInspect | SnapshotRestore


ACTIONS: dict[str, tuple[type, str]] = {
    "save": (SnapshotSave, "save a snapshot from a running master"),
    "inspect": (SnapshotInspect, "verify a snapshot and show its metadata"),
    "restore": (SnapshotRestore, "seed an empty data dir from a snapshot"),
}


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[Action], int]]:
    add_actions(sub, "snapshot", "save, inspect and restore store snapshots", ACTIONS)
    return {"snapshot": run}


def run(s: Action) -> int:
    what = next(name for name, (cls, _) in ACTIONS.items() if cls is type(s))
    try:
        if isinstance(s, SnapshotSave):
            return _save(s)
        if isinstance(s, SnapshotInspect):
            return _inspect(s)
        return _restore(s)
    except (errors.HakubeError, snapshot.SnapshotError, datadir.DataDirError) as exc:
        print(f"hakube snapshot {what}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the target directory does not exist or is not writable
        print(
            f"hakube snapshot {what}: {exc.filename or s.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1


def _save(args: SnapshotSave) -> int:
    with OpsClient(split_servers(args.server), timeout=args.timeout) as ops:
        server, data = ops.save_snapshot()
    meta, _ = snapshot.read_meta(data, f"snapshot from {server}")
    snapshot.write_atomic(args.file, iter([data]))
    print(
        f"saved {args.file}: revision {meta['revision']}, {meta['objects_total']} objects, "
        f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]} (from {server})"
    )
    return 0


def _inspect(args: SnapshotInspect) -> int:
    snap = snapshot.load(args.file)
    meta = snap.meta
    if args.output == "json":
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    rows = [
        ("file", args.file),
        ("revision", meta["revision"]),
        ("term", meta["term"]),
        ("raft index", meta["raft_index"]),
        ("cluster id", meta["cluster_id"] or "-"),
        ("created", f"{meta['created']} by {meta['created_by']}"),
        ("payload", f"{meta['payload_bytes']} bytes, sha256 {meta['payload_sha256']} (ok)"),
        ("members", ", ".join(f"{m['name']}={m['raft']}" for m in meta["members"]) or "-"),
        ("objects", meta["objects_total"]),
    ]
    rows += [(f"  {kind}", n) for kind, n in sorted(meta["objects"].items())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.upper() if not k.startswith(' ') else k:<{width}}  {v}")
    return 0


def _restore(args: SnapshotRestore) -> int:
    snap = snapshot.load(args.file)
    if os.path.isdir(args.data_dir) and datadir.has_raft_data(args.data_dir):
        raise datadir.DataDirError(
            f"data dir {args.data_dir} already holds Raft data; restore "
            "into an empty or new directory"
        )
    # Every member restoring the same snapshot into the same member set gets the same id.
    members = sorted({args.name: args.raft_listen, **args.peers}.items())
    cluster_id = hashlib.sha256(
        (snap.meta["payload_sha256"] + json.dumps(members)).encode()
    ).hexdigest()[:16]
    datadir.seed(
        args.data_dir,
        snap.state,
        name=args.name,
        raft=args.raft_listen,
        api="",
        peers=args.peers,
        term=1,
        cluster_id=cluster_id,
    )
    print(
        f"restored {args.file} (revision {snap.meta['revision']}, "
        f"{snap.meta['objects_total']} objects) into {args.data_dir} as {args.name}; "
        f"cluster {cluster_id} of {', '.join(n for n, _ in members)}"
    )
    return 0
