"""pysyncobj's encodings, made cheap for hakube's payloads.

pysyncobj pickles every command, Raft message and dump with pickle protocol 2, compresses every
message with zlib level 3 (once per follower) and gzips every dump at level 9. For hakube that
is the wrong trade on all three counts:

* Protocol 2 has no bytes type in Python 3: it writes ``bytes`` as a latin-1 string re-encoded
  as UTF-8, so every byte >= 0x80 takes two. hakube's values are protobuf bytes, and a command
  is pickled twice (the call, then the message holding it), so a 256 KiB ConfigMap of binary
  data crossed the wire as ~2.3x its size. Protocol 5 writes bytes as they are, and is faster
  to produce for everything else too.
* Compressing each message costs the leader's Raft thread ~0.2-0.4 ms per 10 KB message per
  follower (measured here), for halving traffic that travels over a LAN or loopback. Level 0
  keeps the zlib framing every pysyncobj peer expects (and any level decompresses the same way)
  while the "compression" is a copy.
* Gzip level 9 made a 50 MiB dump take seconds of a core in the compaction child, on machines
  where the masters share two cores. Level 1 is several times faster.

What stays compatible: every reader accepts every protocol and level, so journals, dumps and
peers written before this change still load. ``install`` is called when ``hakube.store.raft`` is
imported, so every process that runs Raft or reads a data dir uses the same encoding.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from typing import IO, Any

import pysyncobj.pickle as ps_pickle
from pysyncobj import serializer as ps_serializer
from pysyncobj import tcp_connection as ps_tcp

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
WIRE_ZLIB_LEVEL = 0
DUMP_GZIP_LEVEL = 1


class _WireZlib:
    """Stands in for the ``zlib`` module inside pysyncobj's TCP connection."""

    @staticmethod
    def compress(data: bytes, level: int = -1) -> bytes:
        return zlib.compress(data, WIRE_ZLIB_LEVEL)

    decompress = staticmethod(zlib.decompress)


class _DumpGzip:
    """Stands in for the ``gzip`` module inside pysyncobj's dump serializer: any level asked
    for becomes ``DUMP_GZIP_LEVEL``."""

    @staticmethod
    def GzipFile(  # noqa: N802 - the name pysyncobj calls
        filename: str | None = None, mode: str = "rb", compresslevel: int = -1,
        fileobj: IO[bytes] | None = None, mtime: float | None = None,
    ) -> gzip.GzipFile:  # fmt: skip
        return gzip.GzipFile(filename, mode, DUMP_GZIP_LEVEL, fileobj, mtime)


def install() -> None:
    """Switch pysyncobj to the encodings above (idempotent)."""
    setattr(ps_pickle, "__protocol", PICKLE_PROTOCOL)
    ps_tcp.zlib = _WireZlib
    ps_serializer.gzip = _DumpGzip


def write_dump(data: Any, f: IO[bytes]) -> None:
    """Write a pysyncobj dump (gzip of a pickle) the way pysyncobj itself now writes them."""
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=DUMP_GZIP_LEVEL) as g:
        pickle.dump(data, g, PICKLE_PROTOCOL)
