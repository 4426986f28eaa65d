"""One supervisor for every child process of a local cluster: masters, agents, components.

``hakube up`` and the test harness start their children through it, so there is one place
that knows how a child is started, how its death is noticed and when it comes back. The
restart policy is systemd's ``Restart=on-failure`` with exponential back-off: a child that
ends is started again after ``delay`` seconds, doubling with every death in a row up to
``max_delay``; a child that had run for ``healthy_after`` seconds before dying starts the
count afresh. With ``restart=False`` (``hakube up --no-restart``, and tests that kill a child
on purpose) a dead child stays down.

``poll`` does one round of supervision and returns what happened as lines to print; the
caller decides how often to call it (``hakube up``: four times a second; tests that do not
want restarts never call it). Children are grouped by ``kind`` so they can be stopped in order:
components first (they release their leases), then agents, masters last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hakube.local import procs


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead child comes back: see the module docstring."""

    restart: bool = True
    delay: float = 5.0
    max_delay: float = 60.0
    healthy_after: float = 60.0

    def pause(self, failures: int) -> float:
        """Seconds to wait before the restart that follows ``failures`` deaths in a row."""
        return min(self.max_delay, self.delay * 2 ** min(max(failures - 1, 0), 16))


@dataclass
class Child:
    """One supervised process. ``start`` spawns it and returns the process (it may also record
    it elsewhere, as ``LocalCluster.start`` does in its ``MasterProc``)."""

    name: str
    kind: str
    start: Callable[[], subprocess.Popen[bytes]]
    log_path: str = ""
    pid_file: str = ""
    proc: subprocess.Popen[bytes] | None = None
    failures: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    down: bool = False
    """Dead and left down (no restarts), until started by hand."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0


def exit_reason(code: int) -> str:
    """``killed by signal 9`` or ``exit status 1``, from a Popen return code."""
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


class Supervisor:
    """Start, watch, restart (per ``policy``) and stop named child processes."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.children: dict[str, Child] = {}
        self._clock = clock

    def add(
        self,
        name: str,
        kind: str,
        start: Callable[[], subprocess.Popen[bytes]],
        *,
        log_path: str = "",
        pid_file: str = "",
    ) -> Child:
        if name in self.children:
            raise ValueError(f"child {name!r} is supervised already")
        child = self.children[name] = Child(name, kind, start, log_path=log_path, pid_file=pid_file)
        return child

    def spawn(
        self,
        name: str,
        kind: str,
        argv: list[str],
        log_path: str,
        *,
        env: dict[str, str] | None = None,
        pid_file: str = "",
    ) -> Child:
        """Add a child that runs ``argv`` (output appended to ``log_path``) and start it."""
        child = self.add(
            name,
            kind,
            lambda: procs.spawn(argv, log_path, env=env),
            log_path=log_path,
            pid_file=pid_file,
        )
        self.start(name)
        return child

    def of_kind(self, kind: str) -> list[Child]:
        return [c for c in self.children.values() if c.kind == kind]

    def start(self, name: str) -> Child:
        """Start (or start again) one child now."""
        child = self.children[name]
        child.proc = child.start()
        child.started_at = self._clock()
        child.restart_at = None
        child.down = False
        if child.pid_file:
            with open(child.pid_file, "w") as f:
                f.write(f"{child.proc.pid}\n")
        return child

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 15.0) -> None:
        """Send ``sig`` to one child (only the process started here) and wait for it to end."""
        child = self.children[name]
        if child.proc is not None and child.proc.poll() is None:
            child.proc.send_signal(sig)
            child.proc.wait(timeout)

    def poll(self) -> list[str]:
        """One round: notice children that died and restart those whose pause is over."""
        out = []
        now = self._clock()
        for child in self.children.values():
            if child.proc is None or child.down or child.proc.poll() is None:
                continue
            what = f"{child.kind} {child.name}"
            if child.restart_at is None:
                how = exit_reason(child.proc.returncode)
                see = f" - see {child.log_path}" if child.log_path else ""
                if not self.policy.restart:
                    child.down = True
                    out.append(f"{what} stopped ({how}); not restarting (--no-restart){see}")
                    continue
                if now - child.started_at >= self.policy.healthy_after:
                    child.failures = 0  # it had been running well: no penalty
                child.failures += 1
                delay = self.policy.pause(child.failures)
                child.restart_at = now + delay
                out.append(f"{what} stopped ({how}); restarting in {delay:g}s{see}")
            elif now >= child.restart_at:
                try:
                    self.start(child.name)
                except OSError as exc:  # e.g. out of processes: try again after a longer pause
                    child.failures += 1
                    delay = self.policy.pause(child.failures)
                    child.restart_at = now + delay
                    out.append(f"{what} could not be started ({exc}); retrying in {delay:g}s")
                    continue
                out.append(f"{what} started again (pid {child.pid})")
        return out

    def stop(self, kinds: Iterable[str] | None = None, timeout: float = 15.0) -> None:
        """SIGTERM the children of each kind in turn (all of one kind at once), waiting for
        them and SIGKILLing what outlives ``timeout``; no kinds: every child at once. Pid
        files are removed."""
        groups = (
            [list(self.children.values())] if kinds is None else [self.of_kind(k) for k in kinds]
        )
        for group in groups:
            procs.stop([c.proc for c in group if c.proc is not None], timeout)
            for c in group:
                c.down = True
                if c.pid_file:
                    try:
                        os.unlink(c.pid_file)
                    except OSError:
                        pass
