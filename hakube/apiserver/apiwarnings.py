"""Warnings for an accepted request, the Kubernetes way.

A check that accepts a write but has something to tell its author (a field that is stored and
has no effect on this cluster) adds a warning here; the door that received the request sends
them back with the answer: the gRPC door as trailing metadata (key ``warning``, one value each),
the REST door as ``Warning: 299 - "text"`` headers (RFC 7234), which kubectl prints on stderr.

The list lives in a context variable set by the door around one request, so validation deep in
the call needs no extra parameter threaded through every layer; outside a request (a write by
the server itself) ``add`` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from hakube.api import failures

METADATA_KEY = failures.WARNING_KEY
"""The gRPC trailing metadata key, one value per warning."""

_current: ContextVar[list[str] | None] = ContextVar("hakube_api_warnings", default=None)


@contextmanager
def collect() -> Iterator[list[str]]:
    """Collect the warnings of the request handled inside the block into the yielded list."""
    found: list[str] = []
    token = _current.set(found)
    try:
        yield found
    finally:
        _current.reset(token)


def add(texts: Iterable[str]) -> None:
    """Attach warnings to the current request, each text once (a write that is validated twice,
    e.g. an update retried against a newer version, warns once)."""
    found = _current.get()
    if found is None:
        return
    for text in texts:
        if text not in found:
            found.append(text)


def header_value(text: str) -> str:
    """The value of one HTTP ``Warning`` header: code 299 (miscellaneous persistent warning), no
    agent (``-``), and the text as an RFC 7230 quoted-string. Characters a header cannot carry
    (control characters, non-ASCII) are replaced, so a header can never be split or rejected."""
    safe = "".join(ch if ch == "\t" or " " <= ch <= "~" else "?" for ch in text)
    escaped = safe.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
