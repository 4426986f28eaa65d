"""How every long-running component runs, stops and fails to start.

**The shape** (``Service``): a component is constructed with its dependencies; ``run()`` blocks
until it is stopped or fails; ``stop()`` is idempotent and may be called from any thread, also
before ``run()`` (then ``run()`` returns at once) and twice; ``ready`` is a ``threading.Event``
set once the component serves. A master, a node agent, a leader-elected component (scheduler,
controller-manager), DNS, the service proxy and the console all have it, so the CLI, ``hakube
master --with-controllers`` and the tests run each of them the same way:

- ``run_until_signal(service)``: the body of a daemon -- ``run()`` on a thread, SIGTERM/SIGINT
  call ``stop()``, the exception ``run()`` raised (e.g. ``StartupError``) reaches the caller;
- ``Running.start(service)``: a service on a background thread, for in-process use; its
  ``stop(timeout)`` stops it and waits (bounded) for ``run()`` to return.

**Failing to start** (``StartupError``, never ``SystemExit``): library code that cannot start --
a data dir in use, an address taken, credentials that do not fit -- raises ``StartupError`` with
one line naming what is wrong. Only the CLI (``hakube.cli.main``) turns it into a message on
stderr and an exit status, so the same code run in-process gets an exception it can catch.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

log = logging.getLogger("hakube.lifecycle")

EX_SOFTWARE = 1
"""The status of a component that could not start (as a plain ``SystemExit(message)`` had)."""


class StartupError(Exception):
    """A component cannot start; ``str(exc)`` is the one line for the operator."""

    def __init__(self, message: str, exit_code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@runtime_checkable
class Service(Protocol):
    """A long-running component (see the module docstring for the contract)."""

    ready: threading.Event
    """Set once the component serves (never cleared; a component's health is its own metric)."""

    def run(self) -> None:
        """Serve until ``stop()``; raise ``StartupError`` if the component cannot start."""

    def stop(self) -> None:
        """Make ``run()`` return soon; idempotent, from any thread, also before ``run()``."""


S = TypeVar("S", bound=Service)


class Running(Generic[S]):
    """A service running on a background thread (``Running.start(service)``)."""

    def __init__(self, service: S, name: str = "") -> None:
        self.service = service
        self.error: BaseException | None = None
        """What ``run()`` raised, if it did."""
        self._thread = threading.Thread(
            target=self._run, name=name or type(service).__name__, daemon=True
        )

    @classmethod
    def start(cls, service: S, name: str = "") -> Running[S]:
        running = cls(service, name)
        running._thread.start()
        return running

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # noqa: BLE001 - kept for whoever waits on the thread
            self.error = exc
            log.debug("%s ended with %r", self._thread.name, exc)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the service serves; False if it did not within ``timeout`` or ended
        (``error`` says why)."""
        ev = self.service.ready
        deadline = time.monotonic() + timeout
        while not ev.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                return ev.is_set()
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for ``run()`` to return; True if it did (in short steps, so that signals are
        handled meanwhile on the main thread)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                break
            self._thread.join(left)
        return not self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """``service.stop()`` and wait (bounded) for ``run()`` to return; True if it did."""
        self.service.stop()
        return self.join(timeout)


def stop_all(running: Iterable[Running[Any]], timeout: float = 10.0) -> None:
    """Stop several services at once (each gets ``stop()`` first), then wait for each."""
    running = list(running)
    for r in running:
        r.service.stop()
    for r in running:
        r.join(timeout)


def run_until_signal(
    service: Service,
    *,
    what: str,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
    handlers: Mapping[int, Callable[[], None]] | None = None,
) -> None:
    """The body of a daemon: run ``service`` until it ends or one of ``signals`` arrives, which
    calls ``stop()`` (on a thread of its own, so a stop that takes a lock the interrupted code
    holds cannot deadlock). ``handlers``: more signals and what they do (e.g. SIGHUP: reload).
    Re-raises what ``run()`` raised, so a ``StartupError`` reaches ``hakube.cli.main``. Call
    from the main thread; the previous signal handlers are restored on return."""

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: signal %d, stopping", what, signum)
        threading.Thread(target=service.stop, name="stop", daemon=True).start()

    def other(fn: Callable[[], None]) -> Callable[[int, FrameType | None], None]:
        return lambda _signum, _frame: threading.Thread(target=fn, daemon=True).start()

    previous: dict[int, Any] = {}
    for sig in signals:
        previous[sig] = signal.signal(sig, on_stop)
    for sig, fn in (handlers or {}).items():
        previous[sig] = signal.signal(sig, other(fn))
    try:
        running = Running.start(service, name=what)
        running.join()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if running.error is not None:
        raise running.error
