"""How a long-running component fails to start: ``StartupError``, never ``SystemExit``.

Library code (a master, an agent, a metrics endpoint) that cannot start -- a data dir in use,
an address taken, credentials that do not fit -- raises ``StartupError`` with one line naming
what is wrong. Only the CLI (``hakube.cli.main``) turns it into a message on stderr and an exit
status, so the same code run in-process (tests, ``hakube up``'s in-process components) gets an
exception it can catch instead of a process exit.
"""

from __future__ import annotations

EX_SOFTWARE = 1
"""The status of a component that could not start (as a plain ``SystemExit(message)`` had)."""


class StartupError(Exception):
    """A component cannot start; ``str(exc)`` is the one line for the operator."""

    def __init__(self, message: str, exit_code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
