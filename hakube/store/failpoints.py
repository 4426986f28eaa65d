"""Named points where a test can make a master die as if the machine had crashed there.

``HAKUBE_FAILPOINTS=dump-after-rename,…`` in a master's environment arms those points; reaching
an armed point sends SIGKILL to the master (and, from the forked compaction child, to the parent
that forked it), so nothing after the point runs: no cleanup, no flush. With the variable unset,
``hit`` is one set lookup. The durability tests arm each point in turn and check that the master
restarts with every acknowledged write (tests/store/test_crash_points.py).

Points (see where ``hit`` is called):
- ``dump-before-rename``, ``dump-after-rename``: the compaction child has written the new dump,
  before / after it replaces the old one;
- ``snapshot-before-rename``, ``snapshot-after-rename``: a follower has received the leader's
  snapshot, before / after it replaces its dump;
- ``compaction-before-journal-drop``: the new dump is in place and the journal still holds the
  entries it replaces;
- ``leader-before-sync``: the leader has sent new entries to its followers and not yet synced
  them to its own journal (hakube/store/durable.py, leader-parallel sync).

``name@N`` arms a point for its N-th hit instead of its first: a point reached on every write
(``leader-before-sync``) then fires after some writes have been acknowledged.
"""

from __future__ import annotations

import os
import signal

ENV = "HAKUBE_FAILPOINTS"


def _parse(value: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in (p.strip() for p in value.split(",")):
        if not item:
            continue
        name, _, nth = item.partition("@")
        if nth and not (nth.isdigit() and int(nth) > 0):
            raise RuntimeError(
                f"{ENV}: {item!r}: the hit number after @ must be a positive integer"
            )
        points[name] = int(nth) if nth else 1
    return points


_armed = _parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}
_owner = os.getpid()
"""The process that read the variable: the master, whose forked children die with it."""

NAMES = frozenset(
    {
        "dump-before-rename",
        "dump-after-rename",
        "snapshot-before-rename",
        "snapshot-after-rename",
        "compaction-before-journal-drop",
        "leader-before-sync",
    }
)
if _armed.keys() - NAMES:
    raise RuntimeError(
        f"{ENV}: unknown point(s) {', '.join(sorted(_armed.keys() - NAMES))}; "
        f"known: {', '.join(sorted(NAMES))}"
    )


def armed() -> bool:
    return bool(_armed)


def hit(name: str) -> None:
    """Die here if ``name`` is armed (and this is the hit it is armed for)."""
    if name not in _armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] < _armed[name]:
        return
    if os.getpid() != _owner:
        os.kill(_owner, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
