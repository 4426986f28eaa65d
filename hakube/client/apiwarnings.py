"""Where the warnings a master attaches to an answer go on the client side.

A master sends warnings with an answer (accepted or refused, see docs/api.md, Warnings): a
unary call's as trailing metadata ``warning``, a Batch item's in its result. Every path hands
them to one handler, the transport's ``on_warning`` (the Client's, unless a caller chose
another), so a program sees the warnings of its unary writes and of its batched writes alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from hakube.api import failures

log = logging.getLogger("hakube.client")

Handler = Callable[[str], None]
"""Gets the text of one warning."""


class LogOnce:
    """The default warning handler: each distinct warning logged once per client, so a
    controller that creates many pods from one template logs its warning once."""

    LIMIT = 1024
    """Distinct texts remembered; past it the memory starts again (a text may be logged anew),
    so a long-lived client never grows without bound."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, text: str) -> None:
        if text not in self.seen:
            if len(self.seen) >= self.LIMIT:
                self.seen.clear()
            self.seen.add(text)
            log.warning("API warning: %s", text)


def of_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[str]:
    """The warnings in a call's trailing metadata, in order."""
    return [
        value.decode("ascii", "replace") if isinstance(value, bytes) else value
        for key, value in metadata or ()
        if key == failures.WARNING_KEY
    ]


def deliver(handler: Handler, texts: Iterable[str], seen: set[str] | None = None) -> None:
    """Pass each distinct text of one answer (or one Batch call) to ``handler`` once, in order:
    a batch of 100 writes from one template warns the handler once, not 100 times. ``seen``:
    texts already delivered for the same call (its earlier attempts), updated."""
    seen = set() if seen is None else seen
    for text in texts:
        if text not in seen:
            seen.add(text)
            handler(text)
