"""Snapshot files: the store's durable state at one revision, checksummed, with metadata.

A snapshot is what ``hakube snapshot save`` writes and ``snapshot restore`` / ``master
--force-new-cluster`` seed a data dir from. The format is independent of pysyncobj and of Python
pickling, so a snapshot can be inspected (and trusted) without executing anything in it::

    HAKUBE-SNAPSHOT 1\\n
    {metadata as one JSON line}\\n
    payload

The payload is a sequence of frames, each a 4-byte big-endian length and that many bytes: first a
JSON frame with the revision, leases and member registry, then two frames per object, a JSON
header ``[kind, namespace, name, create_rev, mod_rev, labels, fields, lease]`` and the object's
stored bytes. The metadata holds the payload's length and sha256, and a second sha256 covers the
metadata and the payload together, so truncation and corruption anywhere are found before
anything is restored. Watch history and request dedupe records are not kept: a
restored store starts its history at the snapshot's revision (older watches relist).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from hakube.api.timestamps import rfc3339
from hakube.store.durable import durable_replace
from hakube.store.fsm import Record

MAGIC = b"HAKUBE-SNAPSHOT 1\n"
FORMAT = 1
_LEN = struct.Struct(">I")


class SnapshotError(Exception):
    """The file is not a usable snapshot; the message says what is wrong and where."""


@dataclass
class Snapshot:
    """A decoded snapshot: its metadata and the captured store state (see StoreFSM.capture)."""

    meta: dict[str, Any]
    state: dict[str, Any]


def encode(
    state: dict[str, Any],
    *,
    term: int,
    raft_index: int,
    created_by: str,
    members: list[dict[str, str]] | None = None,
    created: float | None = None,
) -> bytes:
    """The file bytes for a captured state. ``members`` lists the Raft members at save time
    (name, raft, api); the registry inside the state is kept as well."""
    buf = io.BytesIO()
    leases = [
        [lid, ttl, sorted(list(k) for k in keys)]
        for lid, (ttl, keys) in sorted(state["leases"].items())
    ]
    head = {
        "revision": state["revision"],
        "leases": leases,
        "members": {n: list(v) for n, v in state["members"].items()},
        "removed": state["removed"],
        "cluster_id": state["cluster_id"],
    }
    _frame(buf, json.dumps(head, separators=(",", ":")).encode())
    counts: dict[str, int] = {}
    for kind in sorted(state["objects"]):
        bucket = state["objects"][kind]
        if bucket:
            counts[kind] = len(bucket)
        for (ns, name), rec in sorted(bucket.items()):
            header = [
                kind,
                ns,
                name,
                rec.create_rev,
                rec.mod_rev,
                rec.labels,
                rec.fields,
                rec.lease,
            ]
            _frame(buf, json.dumps(header, separators=(",", ":")).encode())
            _frame(buf, rec.value)
    payload = buf.getvalue()
    when = time.time() if created is None else created
    meta = {
        "format": FORMAT,
        "revision": state["revision"],
        "term": term,
        "raft_index": raft_index,
        "cluster_id": state["cluster_id"],
        "members": members
        if members is not None
        else [{"name": n, "raft": r, "api": a} for n, (r, a) in sorted(state["members"].items())],
        "objects": counts,
        "objects_total": sum(counts.values()),
        "created": rfc3339(when),
        "created_by": created_by,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    meta["sha256"] = _whole_digest(meta, payload)
    return MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n" + payload


def _whole_digest(meta: dict[str, Any], payload: bytes) -> str:
    """sha256 over the metadata (all but this field, canonical JSON) and the payload, so a
    changed byte anywhere in the file is found, not only in the payload."""
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode() + payload).hexdigest()


def _frame(buf: BinaryIO, data: bytes) -> None:
    buf.write(_LEN.pack(len(data)))
    buf.write(data)


def read_meta(data: bytes, what: str = "snapshot") -> tuple[dict[str, Any], bytes]:
    """Split and verify: (metadata, payload). Raises SnapshotError naming the problem."""
    if not data.startswith(MAGIC):
        raise SnapshotError(
            f"{what} is not a hakube snapshot (no {MAGIC.strip().decode()!r} header)"
        )
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise SnapshotError(f"{what} is corrupt: the metadata line is cut off")
    try:
        meta = json.loads(data[len(MAGIC) : end])
        size, digest = int(meta["payload_bytes"]), str(meta["payload_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{what} is corrupt: unreadable metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise SnapshotError(
            f"{what} has format {meta.get('format')!r}; this hakube reads format {FORMAT}"
        )
    payload = data[end + 1 :]
    if len(payload) != size:
        raise SnapshotError(
            f"{what} is corrupt: payload is {len(payload)} bytes, metadata says "
            f"{size} (truncated or appended to)"
        )
    actual = hashlib.sha256(payload).hexdigest()
    if actual != digest:
        raise SnapshotError(
            f"{what} is corrupt: payload sha256 {actual[:16]}... does not match "
            f"the recorded {digest[:16]}..."
        )
    if meta.get("sha256") != _whole_digest(meta, payload):
        raise SnapshotError(f"{what} is corrupt: the metadata does not match its sha256")
    return meta, payload


def decode(data: bytes, what: str = "snapshot") -> Snapshot:
    """Verify and decode a whole snapshot file's bytes."""
    meta, payload = read_meta(data, what)
    frames = _frames(payload, what)
    try:
        head = json.loads(next(frames))
        objects: dict[str, dict[tuple[str, str], Record]] = {}
        for raw in frames:
            kind, ns, name, create_rev, mod_rev, labels, fields, lease = json.loads(raw)
            value = next(frames)
            objects.setdefault(kind, {})[(ns, name)] = Record(
                value, create_rev, mod_rev, labels, fields, lease
            )
        leases = {lid: (ttl, {tuple(k) for k in keys}) for lid, ttl, keys in head["leases"]}
        state = {
            "revision": head["revision"],
            "objects": objects,
            "leases": leases,
            "members": {n: (v[0], v[1]) for n, v in head["members"].items()},
            "removed": dict(head["removed"]),
            "cluster_id": head["cluster_id"],
        }
    except (StopIteration, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"{what} is corrupt: bad payload record ({exc!r})") from exc
    counts = {k: len(b) for k, b in objects.items() if b}
    if counts != meta.get("objects"):
        raise SnapshotError(
            f"{what} is corrupt: object counts {counts} differ from the "
            f"metadata's {meta.get('objects')}"
        )
    return Snapshot(meta, state)


def _frames(payload: bytes, what: str) -> Iterator[bytes]:
    pos = 0
    while pos < len(payload):
        if pos + 4 > len(payload):
            raise SnapshotError(f"{what} is corrupt: frame header cut off at byte {pos}")
        (size,) = _LEN.unpack_from(payload, pos)
        pos += 4
        if pos + size > len(payload):
            raise SnapshotError(f"{what} is corrupt: frame at byte {pos} runs past the end")
        yield payload[pos : pos + size]
        pos += size


def load(path: str) -> Snapshot:
    """Read, verify and decode a snapshot file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from exc
    return decode(data, f"snapshot {path}")


def write_atomic(path: str, chunks: Iterator[bytes]) -> int:
    """Write chunks to ``path`` through a temporary file and fsync, so a failed save never
    leaves a partial file under the final name. Returns the byte count."""
    tmp = f"{path}.part"
    size = 0
    try:
        # Snapshots hold the whole store: owner-only from the first byte.
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        durable_replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size


def write_bytes(path: str, data: bytes) -> None:
    """write_atomic for bytes already in memory."""
    write_atomic(path, iter([data]))
