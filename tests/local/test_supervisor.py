"""The supervisor's one restart policy, on real child processes: a dead child comes back after a
pause that doubles with each death in a row (capped), a long healthy run resets the count,
``restart=False`` leaves it down, and ``stop`` ends every child and removes its pid file.

The clock is the test's, so pauses are checked exactly without sleeping through them; the
processes and their deaths are real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hakube.local import procs
from hakube.local.supervisor import RestartPolicy, Supervisor
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(60)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dead(sup: Supervisor, name: str) -> bool:
    proc = sup.children[name].proc
    return proc is not None and proc.poll() is not None


def test_the_restart_pause_doubles_up_to_the_cap_and_a_healthy_run_resets_it(
    tmp_path: Path,
) -> None:
    policy = RestartPolicy(delay=1.0, max_delay=4.0, healthy_after=60.0)
    assert [policy.pause(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 4.0, 4.0]
    clock = Clock()
    sup = Supervisor(policy, clock=clock)
    pid_file = str(tmp_path / "s.pid")
    child = sup.spawn("s", "thing", SLEEPER, str(tmp_path / "s.log"), pid_file=pid_file)
    try:
        for pause in (1.0, 2.0, 4.0, 4.0):
            old = child.pid
            assert int(open(pid_file).read()) == old
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: dead(sup, "s"), 10, "the child dead")
            assert sup.poll() == [
                f"thing s stopped (killed by signal 9); restarting in {pause:g}s"
                f" - see {tmp_path / 's.log'}"
            ]
            clock.now += pause - 0.01
            assert sup.poll() == []  # not before its pause is over
            clock.now += 0.01
            assert sup.poll() == [f"thing s started again (pid {child.pid})"]
            assert child.pid != old and child.alive
        clock.now += 60  # a healthy run: the next death starts the count afresh
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: dead(sup, "s"), 10, "the child dead")
        assert "restarting in 1s" in sup.poll()[0]
    finally:
        sup.stop()
    assert not child.alive and not os.path.exists(pid_file)


def test_without_restarts_a_dead_child_stays_down_and_stop_goes_kind_by_kind(
    tmp_path: Path,
) -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(restart=False), clock=clock)
    a = sup.spawn("a", "agent", SLEEPER, str(tmp_path / "a.log"))
    m = sup.spawn(
        "m", "master", [sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "m.log")
    )
    try:
        wait_for(lambda: dead(sup, "m"), 10, "the failing child dead")
        assert sup.poll() == [
            f"master m stopped (exit status 3); not restarting (--no-restart)"
            f" - see {tmp_path / 'm.log'}"
        ]
        clock.now += 3600
        assert sup.poll() == []  # left down, and said once
        assert not m.alive
        sup.stop(["master"])
        assert a.alive  # another kind: untouched
        sup.stop(["agent"])
        assert not a.alive
    finally:
        sup.stop()
    with pytest.raises(ValueError, match="supervised already"):
        sup.add("a", "agent", lambda: procs.spawn(SLEEPER, str(tmp_path / "a.log")))


def test_a_child_that_cannot_be_started_again_is_retried_with_back_off(tmp_path: Path) -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(delay=1.0), clock=clock)
    starts: list[int] = []

    def start() -> subprocess.Popen[bytes]:
        starts.append(1)
        if len(starts) == 2:
            raise OSError("no more processes")
        return procs.spawn(SLEEPER, str(tmp_path / "f.log"))

    sup.add("f", "thing", start)
    child = sup.start("f")
    try:
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: dead(sup, "f"), 10, "the child dead")
        assert "restarting in 1s" in sup.poll()[0]
        clock.now += 1
        assert sup.poll() == ["thing f could not be started (no more processes); retrying in 2s"]
        clock.now += 2
        assert sup.poll() == [f"thing f started again (pid {child.pid})"]
        assert child.alive and len(starts) == 3
    finally:
        sup.stop()
