"""Running iproute2 (``ip``, ``bridge``) and ``nft`` for the agent's network programming."""

from __future__ import annotations

import subprocess


class IprouteError(RuntimeError):
    """An ``ip``/``bridge``/``nft`` command failed; the message holds the command and its
    error."""


def run(*argv: str, stdin: str | None = None) -> str:
    """Run ``argv`` (no shell), with ``stdin`` as its input, and return its stdout;
    IprouteError with its stderr on failure (or when the program is missing)."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except FileNotFoundError as e:
        raise IprouteError(f"{argv[0]}: not installed ({e})") from e
    if proc.returncode != 0:
        raise IprouteError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout
