"""tmpfs mounts for volumes that hold Secret data, so it never reaches the node's disk.

The agent runs as root on a real node and mounts with mount(2) directly (no ``mount`` binary
needed). A mount that fails (no CAP_SYS_ADMIN) is an error the pod reports; the agent falls
back to disk only when told to (``AgentSettings.secret_volumes_on_disk``, for development and
the simulated runtime). Mounts are found again from /proc/self/mounts, so an agent that
restarted removes those of pods that went away meanwhile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from pathlib import Path

MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MNT_DETACH = 0x2
SIZE = "64m"
"""Upper bound of one volume's tmpfs (pages are used only for what is written; Secrets are at
most 1 MiB each)."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_ESCAPE = re.compile(r"\\([0-7]{3})")


class MountError(OSError):
    """mount(2) or umount2(2) failed; the message names the path and the reason."""


def mount(path: Path) -> None:
    """Mount an empty tmpfs (mode 0755, nosuid, nodev, noexec) on the directory ``path``."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    opts = f"mode=0755,size={SIZE}".encode()
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", flags, opts) != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"cannot mount a tmpfs on {path}: {os.strerror(err)}")


def unmount(path: Path) -> None:
    """Detach the mount on ``path`` (lazily: a container still holding it keeps its view)."""
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise MountError(err, f"cannot unmount {path}: {os.strerror(err)}")


def is_tmpfs(path: Path) -> bool:
    """Whether ``path`` is itself the mount point of a tmpfs."""
    want = str(path.resolve())
    return any(p == want and fs == "tmpfs" for p, fs in _mounts())


def mounts_under(path: Path) -> list[Path]:
    """Mount points strictly below ``path``, deepest first."""
    root = str(path.resolve()).rstrip("/") + "/"
    found = [Path(p) for p, _ in _mounts() if p.startswith(root)]
    return sorted(found, key=lambda p: -len(p.parts))


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of this process's mount namespace."""
    out = []
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), parts[1]), parts[2]))
    return out
