"""hakube.gctune: full collections freeze what survived; a thaw lets cycles among frozen objects
be collected after all."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hakube.gctune import GcTuner


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Two objects referring to each other, alive only through the returned weak reference
    (once the caller's strong references are gone, only a collection can free them)."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    keep.append(a)
    return weakref.ref(a)


keep: list[Node] = []


@pytest.fixture
def tuner() -> Iterator[GcTuner]:
    t = GcTuner(thaw_seconds=3600).install()
    yield t
    t.uninstall()
    keep.clear()
    gc.collect()


def test_a_full_collection_freezes_what_survived_it(tuner: GcTuner) -> None:
    gc.collect()
    assert gc.get_freeze_count() > 0 and tuner.freezes >= 1
    # Later full collections walk only what came since: far fewer objects than before.
    survivors = gc.get_freeze_count()
    young = [[i] for i in range(1000)]
    gc.collect()
    assert gc.get_freeze_count() >= survivors + len(young)


def test_a_cycle_frozen_while_alive_is_freed_after_the_next_thaw(tuner: GcTuner) -> None:
    ref = cycle()
    gc.collect()  # alive: frozen with everything else
    keep.clear()
    gc.collect()
    assert ref() is not None, "frozen objects are not walked (the cost freezing removes)"
    tuner.thaw_seconds = 0  # the thaw is due: the next full collection hands them back
    gc.collect()
    gc.collect()
    assert ref() is None and tuner.thaws >= 1


def test_uninstall_removes_the_callback_and_unfreezes(tuner: GcTuner) -> None:
    gc.collect()
    tuner.uninstall()
    assert gc.get_freeze_count() == 0
    assert tuner._after_collection not in gc.callbacks
    tuner.install()  # the fixture uninstalls again
