"""Can keepalived's check run as its script user? Checked after rendering, because when it
cannot, nothing else says so.

keepalived runs the readiness check as ``script_user`` (nobody by default). If that user cannot
reach the script (a parent directory without search permission for it, such as a home directory
of mode 0700) or cannot read and execute it, keepalived 2.2.7 still reports the check as
succeeded: the master keeps its priority whatever its readiness, and a dead or cut-off master
may keep the VIP. ``--config-test`` does not notice either.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path


def _allowed(st: os.stat_result, uid: int, groups: set[int], need: int) -> bool:
    """Whether the user (uid, groups) has the ``need`` bits (of S_IRUSR/S_IXUSR, given as the
    owner's) on a file with status ``st``, as the kernel decides: owner, else group, else other."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return st.st_mode & need == need
    if st.st_gid in groups:
        return st.st_mode & (need >> 3) == need >> 3
    return st.st_mode & (need >> 6) == need >> 6


def script_problem(script: Path, user: str) -> str | None:
    """None if ``user`` can run ``script``; else what stops it, naming the path and its mode."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"user {user!r} does not exist on this host"
    groups = set(os.getgrouplist(user, pw.pw_gid))
    script = script.resolve()
    for directory in reversed(script.parents):
        st = directory.stat()
        if not _allowed(st, pw.pw_uid, groups, stat.S_IXUSR):
            return (
                f"{directory} (mode {stat.S_IMODE(st.st_mode):04o}) cannot be searched by "
                f"{user}, so {user} cannot run {script}"
            )
    st = script.stat()
    if not _allowed(st, pw.pw_uid, groups, stat.S_IRUSR | stat.S_IXUSR):
        return f"{script} (mode {stat.S_IMODE(st.st_mode):04o}) cannot be read and run by {user}"
    return None
