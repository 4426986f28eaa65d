"""A gate that admits work until it is closed, and whose closing waits for the work inside.

The agent mounts a tmpfs for each Secret and ServiceAccount token volume when it prepares a
pod's volumes. Once the agent's stop has begun, nobody will unmount what it mounts next (a
stopping agent leaves its pods running for the next one to adopt, and whoever stops the node
unmounts what lies below the agent's root only after the agent is gone). So pod workers prepare
volumes inside this gate: after ``close`` returns, no preparation runs and none starts.
"""

from __future__ import annotations

import threading
import time


class StopGate:
    """Admits callers (``enter``/``leave``) until ``close``; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self._closed = False

    def enter(self) -> bool:
        """Whether the caller may go in (it must then ``leave``); False once closed."""
        with self._cond:
            if self._closed:
                return False
            self._inside += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._inside -= 1
            self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Admit no one from now on, and wait up to ``timeout`` seconds for those inside to
        leave; whether none is left inside."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._inside:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    @property
    def closed(self) -> bool:
        return self._closed
