"""Lifecycle hooks: ``postStart`` right after a container starts, ``preStop`` before it is
stopped -- run the way probes run (``exec`` through CRI ExecSync, ``httpGet`` against the
pod's address), plus ``sleep``.

``postStart`` runs as part of starting the container: until it returns, the container is not
reported as started, and if it fails the container is killed (and restarted per its policy),
with a ``FailedPostStartHook`` event. ``preStop`` runs before SIGTERM, inside the grace period:
the time it takes is taken from what the container then gets before SIGKILL, and a hook that
outlasts the grace period is abandoned (``FailedPreStopHook``).
"""

from __future__ import annotations

import threading

from hakube.agent.probes import run_probe
from hakube.api.v1 import pod_pb2
from hakube.cri.client import CriClient


def run_hook(
    cri: CriClient,
    cid: str,
    container: pod_pb2.Container,
    handler: pod_pb2.LifecycleHandler,
    host: str,
    timeout: float,
    stop: threading.Event | None = None,
) -> tuple[bool, str]:
    """Run one hook, for at most ``timeout`` seconds: (succeeded, why it failed)."""
    if handler.HasField("sleep"):
        (stop or threading.Event()).wait(min(float(handler.sleep.seconds), timeout))
        return True, ""
    as_probe = pod_pb2.Probe(timeout_seconds=max(1, int(timeout)))
    if handler.exec.command:
        as_probe.exec.CopyFrom(handler.exec)
    elif handler.http_get.ByteSize():
        as_probe.http_get.CopyFrom(handler.http_get)
    else:
        return True, ""
    return run_probe(cri, cid, container, as_probe, host)
