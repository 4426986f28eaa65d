"""The lazy file system's state: what the running programs see, and what the disk holds.

A real disk after a power cut holds only what was synced. This model keeps both views of one
tree of inodes and says exactly when the second catches up with the first:

- **Volatile** (what a program sees while the machine runs): each file's bytes, each
  directory's names. Every write, truncate, create, rename, unlink, mkdir and rmdir changes only
  this view.
- **Durable** (what survives a cut): each file's *synced* bytes, each directory's *synced* names.
  ``fsync``/``fdatasync`` of a file copies its bytes and size (not its names) into the durable
  view; ``fsync`` of a directory copies its list of names — which name points to which inode —
  into the durable view, and nothing else.

So, as POSIX promises and no more (ext4 and XFS in practice often keep more):
- written but unsynced data is lost; a file's size is part of its data;
- a new name (create, mkdir, the target of a rename) survives only once its directory was
  fsynced after the operation; a removed name (unlink, rmdir, the source of a rename) comes
  back unless its directory was fsynced after the removal;
- fsync of a file whose name was never made durable keeps its bytes, but nothing reaches them
  after a cut: the file is gone, unless a later fsync of its directory makes its name durable
  (then it has the bytes synced so far, even if the name was made durable first);
- a directory made durable by its parent's fsync is empty after a cut until it is fsynced itself;
- a rename across two directories needs both synced; between the two, the file has both names
  (or neither);
- mode bits, owner and times are not modelled across cuts (a file keeps the mode it was created
  with); hard links and symbolic links are refused.

``fdatasync`` is ``fsync`` here: both make the bytes and the size durable, which is all the model
keeps of a file.

The durable view is kept written out in a backing directory (``Tree.backing``) after every sync,
so a power cut is simply the end of the process that holds the volatile view, and the next mount
loads the backing directory. Not thread-safe: the FUSE loop runs single-threaded.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from dataclasses import dataclass, field

FILE_MODE, DIR_MODE = 0o100600, 0o040700


def _err(code: int, what: str) -> OSError:
    return OSError(code, os.strerror(code), what)


@dataclass(eq=False)
class Node:
    """An inode. Files use ``data``/``synced``; directories ``entries``/``synced_entries``."""

    mode: int
    data: bytearray = field(default_factory=bytearray)
    synced: bytearray = field(default_factory=bytearray)
    entries: dict[str, Node] = field(default_factory=dict)
    synced_entries: dict[str, Node] = field(default_factory=dict)
    dirty_lo: int = -1
    """Bytes of ``data`` from here to ``dirty_hi`` may differ from ``synced`` (-1: none)."""
    dirty_hi: int = 0
    mtime: float = field(default_factory=time.time)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    def mark(self, lo: int, hi: int) -> None:
        self.dirty_lo = lo if self.dirty_lo < 0 else min(self.dirty_lo, lo)
        self.dirty_hi = max(self.dirty_hi, hi)
        self.mtime = time.time()


class Tree:
    """The file system: paths are absolute within it ("/", "/a/b")."""

    def __init__(self, backing: str) -> None:
        self.backing = backing
        self.root = self._load(backing)
        self.syncs = 0

    # -- loading the disk -------------------------------------------------------------------

    def _load(self, path: str) -> Node:
        """A node for ``path`` on the backing directory: all of it is durable by definition."""
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            node = Node(mode=stat.S_IFDIR | stat.S_IMODE(st.st_mode))
            for name in sorted(os.listdir(path)):
                node.entries[name] = self._load(os.path.join(path, name))
            node.synced_entries = dict(node.entries)
            return node
        if not stat.S_ISREG(st.st_mode):
            raise _err(errno.EINVAL, f"{path}: only files and directories are supported")
        with open(path, "rb") as f:
            content = f.read()
        return Node(
            mode=stat.S_IFREG | stat.S_IMODE(st.st_mode),
            data=bytearray(content),
            synced=bytearray(content),
        )

    # -- lookup -----------------------------------------------------------------------------

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        parent, _, name = path.rstrip("/").rpartition("/")
        return parent or "/", name

    def lookup(self, path: str) -> Node:
        node = self.root
        for part in path.split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise _err(errno.ENOTDIR, path)
            found = node.entries.get(part)
            if found is None:
                raise _err(errno.ENOENT, path)
            node = found
        return node

    def _dir_and_name(self, path: str) -> tuple[Node, str]:
        parent, name = self.split(path)
        d = self.lookup(parent)
        if not d.is_dir:
            raise _err(errno.ENOTDIR, parent)
        if not name:
            raise _err(errno.EEXIST, path)
        return d, name

    # -- volatile operations ----------------------------------------------------------------

    def create(self, path: str, mode: int, *, directory: bool = False) -> Node:
        d, name = self._dir_and_name(path)
        if name in d.entries:
            raise _err(errno.EEXIST, path)
        kind = stat.S_IFDIR if directory else stat.S_IFREG
        node = Node(mode=kind | (stat.S_IMODE(mode) or (0o700 if directory else 0o600)))
        d.entries[name] = node
        d.mtime = time.time()
        return node

    def unlink(self, path: str, *, directory: bool = False) -> None:
        d, name = self._dir_and_name(path)
        node = d.entries.get(name)
        if node is None:
            raise _err(errno.ENOENT, path)
        if directory and not node.is_dir:
            raise _err(errno.ENOTDIR, path)
        if not directory and node.is_dir:
            raise _err(errno.EISDIR, path)
        if directory and node.entries:
            raise _err(errno.ENOTEMPTY, path)
        del d.entries[name]
        d.mtime = time.time()

    def rename(self, old: str, new: str) -> None:
        """``rename(2)``: replaces an existing target (a file by a file, an empty directory by a
        directory) in one step, in the volatile view."""
        od, oname = self._dir_and_name(old)
        nd, nname = self._dir_and_name(new)
        node = od.entries.get(oname)
        if node is None:
            raise _err(errno.ENOENT, old)
        if (new + "/").startswith(old.rstrip("/") + "/") and node.is_dir and new != old:
            raise _err(errno.EINVAL, new)
        target = nd.entries.get(nname)
        if target is node:
            return
        if target is not None:
            if target.is_dir and not node.is_dir:
                raise _err(errno.EISDIR, new)
            if node.is_dir and not target.is_dir:
                raise _err(errno.ENOTDIR, new)
            if target.is_dir and target.entries:
                raise _err(errno.ENOTEMPTY, new)
        del od.entries[oname]
        nd.entries[nname] = node
        od.mtime = nd.mtime = time.time()

    @staticmethod
    def write(node: Node, data: bytes, offset: int) -> int:
        end = offset + len(data)
        if end > len(node.data):
            node.data.extend(bytes(end - len(node.data)))
        node.data[offset:end] = data
        node.mark(offset, end)
        return len(data)

    @staticmethod
    def truncate(node: Node, length: int) -> None:
        if node.is_dir:
            raise _err(errno.EISDIR, "truncate")
        old = len(node.data)
        if length < old:
            del node.data[length:]
        else:
            node.data.extend(bytes(length - old))
        node.mark(min(old, length), max(old, length))

    # -- syncing: the only way anything reaches the durable view ----------------------------

    def sync(self, node: Node) -> None:
        """fsync/fdatasync of ``node``: a file's bytes and size, or a directory's names."""
        self.syncs += 1
        if node.is_dir:
            self._sync_dir(node)
        else:
            self._sync_file(node)

    def _sync_file(self, node: Node) -> None:
        n = len(node.data)
        lo, hi = max(node.dirty_lo, 0), min(node.dirty_hi, n)
        if node.dirty_lo < 0:
            lo = hi = 0
        del node.synced[n:]
        node.synced.extend(bytes(n - len(node.synced)))
        if lo < hi:
            node.synced[lo:hi] = node.data[lo:hi]
        node.dirty_lo, node.dirty_hi = -1, 0
        for path in self.durable_paths(node):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                if lo < hi:
                    os.pwrite(fd, node.data[lo:hi], lo)
                os.ftruncate(fd, n)
            finally:
                os.close(fd)

    def _sync_dir(self, node: Node) -> None:
        old, new = node.synced_entries, dict(node.entries)
        node.synced_entries = new
        for path in self.durable_paths(node):
            for name, child in old.items():
                if new.get(name) is not child:
                    self._remove_backing(os.path.join(path, name))
            for name, child in new.items():
                if old.get(name) is not child:
                    self._write_out(child, os.path.join(path, name), set())

    def durable_paths(self, target: Node) -> list[str]:
        """The backing paths where ``target`` is reachable through synced names only."""
        found: list[str] = []
        stack: list[tuple[Node, str]] = [(self.root, self.backing)]
        seen: set[int] = set()
        while stack:
            node, path = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node is target:
                found.append(path)
            if node.is_dir:
                stack.extend((c, os.path.join(path, n)) for n, c in node.synced_entries.items())
        return found

    def _write_out(self, node: Node, path: str, seen: set[int]) -> None:
        """Put ``node``'s durable state at ``path`` on the backing directory."""
        if id(node) in seen:
            return
        seen.add(id(node))
        self._remove_backing(path)
        if node.is_dir:
            os.mkdir(path, stat.S_IMODE(node.mode))
            for name, child in node.synced_entries.items():
                self._write_out(child, os.path.join(path, name), seen)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IMODE(node.mode))
        try:
            os.write(fd, node.synced)
        finally:
            os.close(fd)

    @staticmethod
    def _remove_backing(path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)

    # -- inspection -------------------------------------------------------------------------

    def unsynced(self) -> int:
        """How many inodes reachable now have changes a cut would lose (tests, logs)."""
        count = 0
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.is_dir:
                count += node.entries != node.synced_entries
                stack.extend(node.entries.values())
            else:
                count += node.dirty_lo >= 0 or len(node.data) != len(node.synced)
        return count
