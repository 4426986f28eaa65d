"""The controllers' work queue: dedupe, one worker per key, back-off."""

from __future__ import annotations

import threading

import pytest

from hakube.client.workqueue import ShutDown, WorkQueue
from hakube.controllers.manager import REGISTRY, select


def test_a_waiting_key_is_queued_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(0) == "a"
    assert q.get(0) == "b"
    assert q.get(0.01) is None


def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")  # changed while a worker holds it
    assert q.get(0.01) is None  # not handed to a second worker
    q.done("a")
    assert q.get(0) == "a"


def test_retries_back_off_exponentially_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert [q.retry("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    q.forget("a")
    assert q.retry("a") == 0.01


def test_delayed_keys_arrive_when_due() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("late", 0.05)
    q.add("now")
    assert q.get(0) == "now"
    assert q.get(1.0) == "late"


def test_shutdown_wakes_a_waiting_worker() -> None:
    q: WorkQueue[str] = WorkQueue()
    raised = threading.Event()

    def worker() -> None:
        try:
            q.get()
        except ShutDown:
            raised.set()

    t = threading.Thread(target=worker)
    t.start()
    q.shutdown()
    t.join(5)
    assert raised.is_set()


def test_controller_selection() -> None:
    import hakube.controllers.all  # noqa: F401

    assert select("*") == sorted(REGISTRY)
    assert "namespace" not in select("*,-namespace")
    assert select("namespace") == ["namespace"]
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        select("nope")
