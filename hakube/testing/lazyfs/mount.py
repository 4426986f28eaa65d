"""Mount, cut and unmount lazy file systems from a test (see ``model`` for what a cut keeps).

Each :class:`LazyFS` runs its FUSE loop in a child process of its own (``fs.py``), so the file
system a master writes to never competes with the test for one interpreter lock, and a power
cut is literal: SIGKILL the child (by its pid), detach the dead mount, and the backing directory
is the disk as it would be found after the power came back. ``mount()`` again serves it.

Cut the programs writing to a mount first (SIGKILL, reaped): their last writes are still in
the kernel until their files close; cutting before would let the kernel hand some of them to
the next mount.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

_STARTUP = 15.0
_live: set[LazyFS] = set()
"""Mounted by this process and not closed yet: unmounted at exit if a test forgot to."""


@atexit.register
def _close_all() -> None:
    for fs in list(_live):
        fs.close()


def unavailable_reason() -> str | None:
    """None when this machine can mount a lazy file system, else why not (one line)."""
    if os.geteuid() != 0:
        return "FUSE mounts need root here"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    try:
        import fuse  # noqa: F401 - fusepy loads libfuse.so.2 on import
    except (ImportError, OSError) as exc:
        return f"fusepy or libfuse2 is missing ({exc}); run scripts/install/fuse.sh"
    if shutil.which("fusermount") is None and shutil.which("umount") is None:
        return "neither fusermount nor umount is installed"
    return None


def is_mounted(path: str) -> bool:
    """Whether a lazy file system is mounted at ``path`` (even a dead one)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target and " lazyfs " in line:
                return True
    return False


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def detach(path: str) -> None:
    """Unmount ``path`` lazily (works on a mount whose server died)."""
    tool = shutil.which("fusermount")
    cmd = [tool, "-u", "-z", path] if tool else ["umount", "-l", path]
    subprocess.run(cmd, capture_output=True, timeout=30, check=False)


class LazyFS:
    """A lazy file system mounted at ``mountpoint``, its disk at ``backing``.

    Use as a context manager, or call ``close`` (also on failure): it unmounts and ends the
    server. Everything unsynced at ``close`` is dropped, as by a cut.
    """

    def __init__(self, backing: str, mountpoint: str, *, log_path: str | None = None) -> None:
        self.backing = os.path.abspath(backing)
        self.mountpoint = os.path.abspath(mountpoint)
        self.log_path = log_path or self.backing + ".log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cuts = 0

    def mount(self) -> LazyFS:
        """Serve the backing directory at the mount point; returns once it is mounted."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        os.makedirs(self.backing, mode=0o700, exist_ok=True)  # the root of the "disk"
        os.makedirs(self.mountpoint, exist_ok=True)
        if is_mounted(self.mountpoint):  # a dead one, left by a run killed too hard
            detach(self.mountpoint)
        _live.add(self)
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hakube.testing.lazyfs", self.backing, self.mountpoint],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + _STARTUP
        while not is_mounted(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(
                    f"lazyfs did not mount {self.mountpoint} within {_STARTUP}s; see "
                    f"{self.log_path}:\n{Path(self.log_path).read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)
        return self

    def cut(self) -> None:
        """Power cut: everything not synced is gone; the backing directory holds the rest.
        Leaves the file system unmounted (``mount`` brings the disk back)."""
        self._stop()
        self.cuts += 1

    def power_cycle(self) -> None:
        """Cut, then mount the surviving disk again."""
        self.cut()
        self.mount()

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        deadline = time.monotonic() + 10
        while is_mounted(self.mountpoint) and time.monotonic() < deadline:
            detach(self.mountpoint)
            if is_mounted(self.mountpoint):
                time.sleep(0.05)
        if is_mounted(self.mountpoint):
            raise RuntimeError(f"could not unmount {self.mountpoint}")

    def close(self) -> None:
        self._stop()
        _live.discard(self)

    def __enter__(self) -> LazyFS:
        return self.mount()

    def __exit__(self, *exc: object) -> None:
        self.close()
