"""Mounts a test session leaves behind: removing them at a harness's teardown, and finding them.

Agents mount a tmpfs for every Secret and ServiceAccount token volume below their root
directory, and they do it in the test runner's mount namespace (the harnesses keep it shared, so
containerd sees the volumes). A harness that kills its agents therefore owns their mounts: the
pods keep running until containerd stops, and a killed agent never unmounts. If the harness then
deletes its work directory, ``shutil.rmtree`` empties the tmpfs but cannot remove the mount
point (EBUSY, ignored), and the mount outlives the run.

So each harness calls :func:`unmount_under` on its work directory after every process that could
mount there is gone, and the suite's conftest asks :class:`MountWatch` at the end of the run for
mounts still below the run's own directories (``hk<runner pid>x...`` harness directories and the
run's pytest base temporary directory -- never another run's), which fail the run.

Product code never imports this module.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hakube.agent import tmpfs

_ROUNDS = 8
"""Passes of :func:`unmount_under`: a mount point can hold stacked mounts, each pass removes the
top one."""


def unmount_under(path: Path | str) -> list[Path]:
    """Detach (lazily: a process still holding one keeps its view) every mount below ``path``,
    deepest first, until none is left; returns what was unmounted. Call it once nothing that
    could mount there runs any more."""
    done: list[Path] = []
    for _ in range(_ROUNDS):
        found = tmpfs.mounts_under(Path(path))
        if not found:
            break
        done += detach(found)
    return done


def detach(points: list[Path]) -> list[Path]:
    """Lazily unmount each of ``points`` (deepest first); returns those unmounted."""
    done = []
    for m in sorted(points, key=lambda p: -len(p.parts)):
        try:
            tmpfs.unmount(m)
            done.append(m)
        except tmpfs.MountError:
            pass  # gone meanwhile (a parent's detach took it along)
    return done


def run_roots(basetemp: Path | None, pid: int | None = None) -> list[Path]:
    """The directories of one test run: its pytest base temporary directory and every harness
    directory named after the runner's pid (``<tmp>/hk<pid>x...``, see hakube.testing.netns)."""
    pid = os.getpid() if pid is None else pid
    tmp = Path(tempfile.gettempdir())
    roots = [basetemp] if basetemp is not None else []
    try:
        roots += [p for p in tmp.iterdir() if p.name.startswith(f"hk{pid}x")]
    except OSError:
        pass
    return roots


def mounts_below(roots: list[Path]) -> list[Path]:
    """Mount points strictly below any of ``roots`` (or on a harness directory itself)."""
    out: list[Path] = []
    for root in roots:
        out += tmpfs.mounts_under(root)
    return sorted(set(out))


@dataclass
class MountWatch:
    """Remembers, for each mount below the run's directories, the test during which it first
    showed up (checked after each test's teardown), so a leftover is reported with the test
    that made it."""

    basetemp: Path | None = None
    seen: dict[Path, str] = field(default_factory=dict)

    def after(self, nodeid: str) -> None:
        """Note the mounts that appeared by the end of test ``nodeid``."""
        for m in mounts_below(run_roots(self.basetemp)):
            self.seen.setdefault(m, nodeid)

    def leftovers(self) -> list[tuple[Path, str]]:
        """Mounts still below the run's directories (call once every fixture is torn down),
        each with the test it showed up in ("" if none: made during the session's
        teardown)."""
        return [(m, self.seen.get(m, "")) for m in mounts_below(run_roots(self.basetemp))]
