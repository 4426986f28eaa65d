"""The FUSE side of the lazy file system: ``python -m hakube.testing.lazyfs BACKING MOUNTPOINT``.

Serves ``model.Tree`` over FUSE (fusepy on libfuse 2), in the foreground, single-threaded, until
unmounted or killed. Killing it *is* the power cut: the volatile view dies with the process, and
the backing directory holds exactly the durable view (``mount.LazyFS.cut``).

Mount options, and why:
- ``hard_remove`` with ``flag_nullpath_ok``: an unlinked or replaced file that is still open
  keeps working through its handle, with no ``.fuse_hidden`` rename that the model would see as
  a real one (pysyncobj replaces its journal while the old one is still mapped);
- ``attr_timeout=0,entry_timeout=0,negative_timeout=0``: the kernel asks again every time, so it
  never answers from a name or a size it cached before a cut;
- no ``direct_io``: pysyncobj maps its journal with ``mmap``, which needs the page cache; the
  kernel writes the dirty pages to us on ``fsync``/``msync``/close, and each open drops the
  cached pages (no ``keep_cache``).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import sys
from typing import Any

from hakube.testing.lazyfs.model import Node, Tree

log = logging.getLogger("hakube.testing.lazyfs")


class LazyOps:
    """fusepy operations over a Tree. Handles map to inodes, so a file renamed or unlinked
    while open is still the same file to whoever has it open."""

    flag_nullpath_ok = 1
    flag_nopath = 0
    use_ns = True

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.handles: dict[int, Node] = {}
        self._next = itertools.count(1)

    def __call__(self, op: str, *args: Any) -> Any:
        fn = getattr(self, op, None)
        if fn is None:
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        return fn(*args)

    # -- helpers ----------------------------------------------------------------------------

    def _node(self, path: str | None, fh: int | None = None) -> Node:
        if fh:
            node = self.handles.get(fh)
            if node is None:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return node
        if path is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return self.tree.lookup(path)

    def _handle(self, node: Node) -> int:
        fh = next(self._next)
        self.handles[fh] = node
        return fh

    # -- attributes and directories ---------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        node = self._node(path, fh)
        ns = int(node.mtime * 1e9)
        size = 4096 if node.is_dir else len(node.data)
        return {
            "st_mode": node.mode,
            "st_nlink": 2 + sum(c.is_dir for c in node.entries.values()) if node.is_dir else 1,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_atime": ns,
            "st_mtime": ns,
            "st_ctime": ns,
        }

    def access(self, path: str, amode: int) -> int:
        self.tree.lookup(path)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.tree.backing)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail")
        return {k: getattr(st, k) for k in keys} | {"f_namemax": 255}

    def chmod(self, path: str, mode: int) -> int:
        node = self.tree.lookup(path)
        node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self.tree.lookup(path)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        node = self.tree.lookup(path)
        node.mtime = times[1] / 1e9 if times else node.mtime
        return 0

    def opendir(self, path: str) -> int:
        node = self.tree.lookup(path)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return self._handle(node)

    def readdir(self, path: str | None, fh: int) -> list[str]:
        return [".", "..", *self._node(path, fh).entries]

    def releasedir(self, path: str | None, fh: int) -> int:
        self.handles.pop(fh, None)
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        self.tree.sync(self._node(path, fh))
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self.tree.create(path, mode, directory=True)
        return 0

    def rmdir(self, path: str) -> int:
        self.tree.unlink(path, directory=True)
        return 0

    def unlink(self, path: str) -> int:
        self.tree.unlink(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.tree.rename(old, new)
        return 0

    def link(self, target: str, source: str) -> int:
        raise OSError(errno.EPERM, "hard links are not modelled")

    def symlink(self, target: str, source: str) -> int:
        raise OSError(errno.EPERM, "symbolic links are not modelled")

    # -- files ------------------------------------------------------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return self._handle(self.tree.create(path, mode))

    def open(self, path: str, flags: int) -> int:
        node = self.tree.lookup(path)
        if node.is_dir:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        return self._handle(node)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return bytes(self._node(path, fh).data[offset : offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        return self.tree.write(self._node(path, fh), data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        self.tree.truncate(self._node(path, fh), length)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        self.tree.sync(self._node(path, fh))
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def release(self, path: str | None, fh: int) -> int:
        self.handles.pop(fh, None)
        return 0


def main(argv: list[str]) -> int:
    """Mount ``BACKING`` at ``MOUNTPOINT`` and serve until unmounted or killed."""
    if len(argv) != 2:
        print("usage: python -m hakube.testing.lazyfs BACKING MOUNTPOINT", file=sys.stderr)
        return 2
    import fuse  # fusepy: loads libfuse.so.2 when imported

    logging.basicConfig(level=logging.WARNING, format="lazyfs %(levelname)s %(message)s")
    backing, mountpoint = (os.path.abspath(a) for a in argv)
    fuse.FUSE(
        LazyOps(Tree(backing)),
        mountpoint,
        foreground=True,
        nothreads=True,
        fsname="lazyfs",
        subtype="lazyfs",
        hard_remove=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        big_writes=True,
    )
    return 0
