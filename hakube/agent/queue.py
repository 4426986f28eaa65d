"""The node agent's work queue of pod uids: the controllers' ``WorkQueue``, one implementation.

The shape of client-go's workqueue, which the kubelet's pod workers also follow: a key added
while it is queued is queued once; a key added while a worker holds it is queued again when the
worker is done, so a change is never lost and never handled concurrently with itself;
``add_after`` wakes a key later (a back-off that expires, a probe period). The agent's workers
end on ``get() is None`` rather than on ``ShutDown``, hence this small adapter.
"""

from __future__ import annotations

from hakube.client.workqueue import ShutDown
from hakube.client.workqueue import WorkQueue as _WorkQueue


class WorkQueue(_WorkQueue[str]):
    def get(self, timeout: float | None = None) -> str | None:
        """The next key to work on (the caller must call ``done``); None once closed."""
        try:
            return super().get(timeout)
        except ShutDown:
            return None

    def close(self) -> None:
        self.shutdown()
