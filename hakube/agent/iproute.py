"""Running iproute2 (``ip``, ``bridge``) for the agent's network programming."""

from __future__ import annotations

import subprocess


class IprouteError(RuntimeError):
    """An ``ip``/``bridge`` command failed; the message holds the command and its error."""


def run(*argv: str) -> str:
    """Run ``argv`` (no shell) and return its stdout; IprouteError with its stderr on failure."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=10,
        check=False,
    )
    if proc.returncode != 0:
        raise IprouteError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout
