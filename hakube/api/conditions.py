"""Status conditions: the one rule for setting them, shared by every writer.

Kubernetes' rule (``meta.SetStatusCondition``): a condition is found by type; setting it
changes status, reason and message, and ``lastTransitionTime`` moves only when the status
flips -- so "Ready since" survives a change of message. Node, Pod, Deployment and workload
conditions are different messages with the same fields, so the helpers take any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar


class Condition(Protocol):
    """The fields every condition message has (``meta.Condition``, ``PodCondition``, ...)."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str


C = TypeVar("C", bound=Condition)


def find(conditions: Iterable[C], type_: str) -> C | None:
    """The condition of ``type_``, or None."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    """Whether the condition of ``type_`` is present with status "True"."""
    c = find(conditions, type_)
    return c is not None and c.status == "True"


def since(prev: Condition | None, status: str, now: str) -> str:
    """The ``lastTransitionTime`` a condition with ``status`` carries, given the one it
    replaces: the old time while the status is unchanged, else ``now``."""
    return prev.last_transition_time if prev is not None and prev.status == status else now


def set_condition(
    conditions: Any,
    type_: str,
    status: str,
    reason: str = "",
    message: str = "",
    *,
    now: str,
    stamps: tuple[str, ...] = (),
) -> bool:
    """Set a condition in a repeated condition field; True if anything changed.

    ``now`` is the RFC 3339 time written to ``lastTransitionTime`` when the condition is new
    or its status flips, and to every field named in ``stamps`` (``last_probe_time``,
    ``last_update_time``, ...) whenever the condition changes at all.
    """
    cur = find(conditions, type_)
    if cur is None:
        conditions.add(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=now,
            **dict.fromkeys(stamps, now),
        )
        return True
    if (cur.status, cur.reason, cur.message) == (status, reason, message):
        return False
    cur.last_transition_time = since(cur, status, now)
    cur.status, cur.reason, cur.message = status, reason, message
    for field in stamps:
        setattr(cur, field, now)
    return True
