"""Store failures, named for what the caller may do about them.

StoreError
├── Unavailable        no quorum or no leader: nothing was written, retry elsewhere/later
│   └── NotApplied     the proposal was dropped before commit (leader change): retry is safe
└── OutcomeUnknown     the proposal may or may not have been committed; retry with the same
                       request id (the store deduplicates) to learn which
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure."""


class Unavailable(StoreError):
    """This master cannot reach a quorum (or there is no leader); nothing was written."""


class NotApplied(Unavailable):
    """The proposal was discarded before being committed; retrying cannot duplicate it."""


class OutcomeUnknown(StoreError):
    """The proposal may have been committed; only a retry with the same request id can tell."""
