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

from hakube.client import errors
from hakube.client.ops import OpsClient, split_servers
from hakube.master.settings import parse_peers
from hakube.pki.tls import TlsFiles
from hakube.store import datadir, snapshot
from hakube.store.raft import RaftSettings


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    top = sub.add_parser("snapshot", help="save, inspect and restore store snapshots")
    actions = top.add_subparsers(dest="snapshot_command", required=True, metavar="ACTION")
    p = actions.add_parser("save", help="save a snapshot from a running master")
    p.add_argument("file", help="where to write the snapshot")
    p.add_argument("-s", "--server", help="master API address(es), HOST:PORT[,HOST:PORT...]")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds (120)")
    p = actions.add_parser("inspect", help="verify a snapshot and show its metadata")
    p.add_argument("file")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = actions.add_parser("restore", help="seed an empty data dir from a snapshot")
    p.add_argument("file")
    p.add_argument("--data-dir", required=False, help="new data dir (must hold no Raft data)")
    p.add_argument("--name", help="this master's name in the new cluster")
    p.add_argument("--raft-listen", help="this master's Raft HOST:PORT in the new cluster")
    p.add_argument(
        "--peers",
        type=parse_peers,
        default={},
        help="the other new masters: NAME=HOST:PORT,... (Raft addresses)",
    )
    return {"snapshot": run}


def run(args: argparse.Namespace) -> int:
    try:
        if args.snapshot_command == "save":
            return _save(args)
        if args.snapshot_command == "inspect":
            return _inspect(args)
        return _restore(args)
    except (errors.HakubeError, snapshot.SnapshotError, datadir.DataDirError) as exc:
        print(f"hakube snapshot {args.snapshot_command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the target directory does not exist or is not writable
        print(
            f"hakube snapshot {args.snapshot_command}: {exc.filename or args.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1


def _save(args: argparse.Namespace) -> int:
    with OpsClient(split_servers(args.server), timeout=args.timeout) as ops:
        server, data = ops.save_snapshot()
    meta, _ = snapshot.read_meta(data, f"snapshot from {server}")
    snapshot.write_atomic(args.file, iter([data]))
    print(
        f"saved {args.file}: revision {meta['revision']}, {meta['objects_total']} objects, "
        f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]} (from {server})"
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
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


def _restore(args: argparse.Namespace) -> int:
    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("data_dir", "name", "raft_listen")
        if not getattr(args, n)
    ]
    if missing:
        raise errors.HakubeError(f"missing required setting {', '.join(missing)}")
    try:
        # Only the names and addresses are checked here; no TLS material is read.
        RaftSettings(
            name=args.name,
            raft_address=args.raft_listen,
            peers=args.peers,
            data_dir=args.data_dir,
            tls=TlsFiles("", "", ""),
        ).validate()
    except ValueError as exc:
        raise errors.HakubeError(str(exc)) from exc
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
