"""Writing key material: atomically, private files 0600 in 0700 directories.

A key is never visible half-written or with a wider mode for a moment: the temporary file is
created with its final mode (``O_EXCL``, mode given to ``open``), synced, then renamed over the
old file, and the directory is synced so that the rename survives a power loss.
"""

from __future__ import annotations

import os

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (and parents) as 0700; tighten it if it exists with a wider mode."""
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, PRIVATE_DIR_MODE)


def write_atomic(path: str, data: bytes, *, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace ``path`` with ``data``; the file never exists with another mode or content."""
    directory = os.path.dirname(os.path.abspath(path))
    ensure_private_dir(directory) if mode == PRIVATE_FILE_MODE else os.makedirs(
        directory, exist_ok=True
    )
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widened
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
