"""Child processes of hakube's own commands, as ``hakube up`` and the test harnesses run them.

Every child is ``python -m hakube ...`` (the same interpreter and source tree as the parent) in a
session of its own, so a Ctrl-C in the terminal reaches only the supervisor, which then stops its
children in order: components first (they release their leases), masters last. Output goes to a
log file that is appended to, so a restarted process keeps its history in one place.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable


def hakube_argv(*args: str) -> list[str]:
    """The command line that runs ``hakube ARGS`` with this interpreter."""
    return [sys.executable, "-m", "hakube", *args]


def spawn(
    argv: list[str], log_path: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, stdout and stderr appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM every live process at once (so they shut down in parallel), wait for each, and
    SIGKILL whichever has not ended within ``timeout``."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
