"""One client operation as a checker sees it: what was asked, when, and how it ended.

Times are the client's monotonic clock at invocation and completion. An operation ends in one of
three ways, as in Jepsen: ``ok`` (it took effect, and ``result`` is what it returned), ``fail``
(it certainly did not take effect: refused before it could reach the store, or a precondition
that the server reported false) and ``info`` (unknown: a timeout or a lost connection — it may
take effect at any time after its invocation, or never).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Op:
    """A completed (or abandoned) operation on one key."""

    process: int
    """The client that ran it; one process runs one operation at a time."""
    f: str
    """What it did: ``read``, ``write`` or ``cas`` for registers; ``add`` for sets."""
    key: str
    value: Any
    """The argument: the value written, ``(expected, new)`` for cas, None for read."""
    invoke: float
    complete: float = math.inf
    """Completion time; infinite for ``info`` (it may take effect any time later)."""
    outcome: Outcome = "ok"
    result: Any = None
    """What an ``ok`` read returned (None: the key was absent)."""
    index: int = field(default=-1, compare=False)
    """Position in the recorded history, for reports."""

    def describe(self) -> str:
        arg = self.result if self.f == "read" else self.value
        end = "∞" if math.isinf(self.complete) else f"{self.complete:.6f}"
        return (
            f"#{self.index} p{self.process} {self.f} {self.key}={arg!r} "
            f"{self.outcome} [{self.invoke:.6f}, {end}]"
        )


def by_key(ops: list[Op]) -> dict[str, list[Op]]:
    """Operations grouped per key: registers are independent, so each key is checked alone
    (linearizability is compositional), which keeps the search small."""
    out: dict[str, list[Op]] = {}
    for op in ops:
        out.setdefault(op.key, []).append(op)
    return out
