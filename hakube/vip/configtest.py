"""Ask keepalived itself whether a rendered configuration is acceptable.

``keepalived --config-test -f FILE`` (2.2) parses the file as the daemon would, checks that the
interfaces named exist in the current network namespace, and vets the scripts for script
security. It prints one line per problem on stderr. Because keepalived starts with a bad value
ignored rather than refusing, any message at all counts as a failure here.

keepalived 2.2.7 (Debian 12) has a bug: with a non-root ``script_user`` the test kills itself
with SIGTERM while checking the script, before it can print or exit with a status (upstream
issues #2587 and #2617, fixed in 2.2.8). When that happens with nothing printed, the same file
is tested again with ``script_user root``: every parser and security check still runs; only the
check that the unprivileged user may execute the script is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile


class ConfigTestError(RuntimeError):
    """keepalived refused the configuration, or could not be run to ask it."""


_SCRIPT_USER = re.compile(r"^(\s*script_user\s+)\S+", re.MULTILINE)


def config_test(
    conf_path: str | os.PathLike[str],
    *,
    netns: str | None = None,
    keepalived: str = "keepalived",
    timeout: float = 30.0,
) -> None:
    """Raise ConfigTestError with keepalived's messages unless it accepts ``conf_path``.

    ``netns`` runs the test inside that network namespace (``ip netns exec``), which is where the
    interface must exist.
    """
    path = os.path.abspath(conf_path)
    if shutil.which(keepalived) is None:
        raise ConfigTestError(
            f"{keepalived} not found; install Debian's keepalived (scripts/install/keepalived.sh)"
        )
    rc, messages = _run(path, netns, keepalived, timeout)
    if rc == -signal.SIGTERM and not messages:
        with open(path) as f:
            text = f.read()
        if _SCRIPT_USER.search(text):
            rc, messages = _retest_as_root(text, path, netns, keepalived, timeout)
    if rc != 0 or messages:
        detail = "; ".join(messages) or f"exit status {rc}"
        raise ConfigTestError(f"keepalived --config-test rejected {path}: {detail}")


def _retest_as_root(
    text: str, path: str, netns: str | None, keepalived: str, timeout: float
) -> tuple[int, list[str]]:
    """The 2.2.7 workaround: the same file with the script user swapped for root."""
    patched = _SCRIPT_USER.sub(r"\1root", text)
    fd, tmp = tempfile.mkstemp(prefix="hakube-configtest-", suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(patched)
        rc, messages = _run(tmp, netns, keepalived, timeout)
    finally:
        os.unlink(tmp)
    # Messages name the temporary copy; point them back at the file the caller gave.
    return rc, [m.replace(tmp, path) for m in messages]


def _run(path: str, netns: str | None, keepalived: str, timeout: float) -> tuple[int, list[str]]:
    argv = [keepalived, "--config-test", "-f", path]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigTestError(f"keepalived --config-test did not finish in {timeout} s") from exc
    except OSError as exc:
        raise ConfigTestError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    messages = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, list(dict.fromkeys(messages))
