"""Warnings for an accepted request, the Kubernetes way.

A check that accepts a write but has something to tell its author (a field that is stored and
has no effect on this cluster) adds a warning here; the door that received the request sends
them back with the answer: the gRPC door as trailing metadata (key ``warning``, one value each),
the REST door as ``Warning: 299 - "text"`` headers (RFC 7234), which kubectl prints on stderr.

The list lives in a context variable set by the door around one request, so validation deep in
the call needs no extra parameter threaded through every layer; outside a request (a write by
the server itself) ``add`` does nothing. A refused request keeps the warnings found before the
refusal and sends them with its error, as Kubernetes does (a field stored without effect is worth
knowing about while fixing the field that was refused). A Batch collects per item: each item's
warnings travel in its own result.

Bounded: one request keeps at most ``MAX_WARNINGS`` texts of at most ``MAX_TEXT`` characters and
``MAX_TOTAL`` characters in all (Kubernetes caps its Warning headers at 4 KiB of text per
response too), so no request can make a master send megabytes of warnings; what does not fit is
dropped. Texts are kept printable ASCII, the only characters a gRPC metadata value or an HTTP
header can carry as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from hakube.api import failures

METADATA_KEY = failures.WARNING_KEY
"""The gRPC trailing metadata key, one value per warning."""

MAX_WARNINGS = 32
"""Distinct warnings kept for one request (one Batch item); later ones are dropped."""

MAX_TEXT = 256
"""Characters of one warning; a longer text is cut, ending in ``...``."""

MAX_TOTAL = 4096
"""Characters of all the warnings of one request; a warning that does not fit is dropped."""

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
    e.g. an update retried against a newer version, warns once), within the caps above."""
    found = _current.get()
    if found is None:
        return
    used = sum(map(len, found))
    for raw in texts:
        text = _bounded(raw)
        if text in found:
            continue
        if len(found) >= MAX_WARNINGS:
            return
        if used + len(text) > MAX_TOTAL:
            continue  # a shorter one may still fit
        found.append(text)
        used += len(text)


def _printable(text: str) -> str:
    """``text`` with every character that is not printable ASCII (or a tab) replaced by ``?``."""
    return "".join(ch if ch == "\t" or " " <= ch <= "~" else "?" for ch in text)


def _bounded(text: str) -> str:
    """One warning as it is kept: printable ASCII (a tab becomes a space: gRPC metadata carries
    no control character), at most ``MAX_TEXT`` characters."""
    text = _printable(text.replace("\t", " "))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def header_value(text: str) -> str:
    """The value of one HTTP ``Warning`` header: code 299 (miscellaneous persistent warning), no
    agent (``-``), and the text as an RFC 7230 quoted-string. Characters a header cannot carry
    (control characters, non-ASCII) are replaced, so a header can never be split or rejected."""
    escaped = _printable(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
