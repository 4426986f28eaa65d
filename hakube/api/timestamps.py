"""The API's two time formats, and their one parser.

Kubernetes writes object times (creationTimestamp, lastTransitionTime, ...) as RFC 3339 at
one-second resolution (``metav1.Time``) and Lease and Event times with microseconds
(``metav1.MicroTime``). Every component formats and parses them here, so a controller, the
agent and the API server can never write two spellings of one instant.
"""

from __future__ import annotations

import datetime
import time


def _utc(t: float | None) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.UTC)


def rfc3339(t: float | None = None) -> str:
    """Epoch seconds (default now) as ``2024-01-02T03:04:05Z`` (``metav1.Time``)."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t: float | None = None) -> str:
    """Epoch seconds (default now) as ``2024-01-02T03:04:05.123456Z`` (``metav1.MicroTime``),
    as Kubernetes writes Lease and Event times."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float | None:
    """RFC 3339 (either format above; fractions and offsets accepted) -> epoch seconds; None
    for "" or garbage. A time without an offset is taken as UTC."""
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()
