"""Liveness, readiness and startup probes (exec through CRI ExecSync, httpGet, tcpSocket, grpc).

One scheduler thread keeps every probe's next due time in a heap and hands due probes to a small
thread pool, so a node with a hundred probed containers costs a handful of threads, not a
hundred. Results follow Kubernetes: a startup probe gates the other two and, like liveness,
fails the container after ``failureThreshold`` consecutive failures; readiness starts False and
flips after ``successThreshold`` successes or ``failureThreshold`` failures; liveness starts
passing. A changed result calls ``on_change(pod uid)`` so the pod is reconciled: its Ready
condition updated, or its container restarted.

Probes are keyed by container id: a restarted container is a new id and starts over (with its
initialDelaySeconds), as in Kubernetes.
"""

from __future__ import annotations

import heapq
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hakube.api.v1 import pod_pb2
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError

log = logging.getLogger("hakube.agent.probes")
KINDS = ("startup", "liveness", "readiness")


@dataclass(eq=False)
class _Worker:
    uid: str
    pod: str
    cid: str
    container: pod_pb2.Container
    kind: str
    probe: pod_pb2.Probe
    host: str
    result: bool
    successes: int = 0
    failures: int = 0
    stopped: bool = False
    last_message: str = ""


class ProbeManager:
    def __init__(
        self, cri: CriClient, on_change: Callable[[str, str, str, str], None], *, workers: int = 4
    ) -> None:
        """``on_change(uid, container id, kind, message)`` is called when a result flips."""
        self.cri = cri
        self.on_change = on_change
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Worker]] = []
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._seq = 0
        self._stopped = False
        self.ready = threading.Event()
        """Set once the schedule runs (a ``hakube.lifecycle.Service``)."""
        self.on_result: Callable[[str, bool], None] | None = None
        """Called with (probe kind, passed) after every probe run (metrics)."""

    # -- results (any thread) -------------------------------------------------------------------

    def result(self, cid: str, kind: str) -> bool | None:
        """The current result of a probe, None when the container has no such probe."""
        with self._cond:
            w = self._workers.get((cid, kind))
            return None if w is None else w.result

    def ready_results(self) -> dict[str, bool]:
        with self._cond:
            return {cid: w.result for (cid, k), w in self._workers.items() if k == "readiness"}

    def started_results(self) -> dict[str, bool]:
        with self._cond:
            return {cid: w.result for (cid, k), w in self._workers.items() if k == "startup"}

    # -- registration ---------------------------------------------------------------------------

    def ensure(
        self,
        uid: str,
        pod: str,
        container: pod_pb2.Container,
        cid: str,
        started_at: float,
        host: str,
    ) -> None:
        """Start probing a running container (no-op if already done); ``started_at`` is the
        container's start in wall-clock seconds."""
        with self._cond:
            for kind in KINDS:
                probe = getattr(container, f"{kind}_probe")
                if not probe.ByteSize() or (cid, kind) in self._workers:
                    continue
                w = _Worker(
                    uid=uid,
                    pod=pod,
                    cid=cid,
                    container=container,
                    kind=kind,
                    probe=probe,
                    host=host,
                    result=kind == "liveness",
                )
                self._workers[(cid, kind)] = w
                delay = started_at + probe.initial_delay_seconds - time.time()
                self._push(time.monotonic() + max(0.0, delay), w)
            self._cond.notify()

    def retain(self, uid: str, cids: set[str]) -> None:
        """Stop probing containers of pod ``uid`` that are not in ``cids``."""
        with self._cond:
            for key, w in list(self._workers.items()):
                if w.uid == uid and w.cid not in cids:
                    w.stopped = True
                    del self._workers[key]

    def _push(self, due: float, w: _Worker) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, w))

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> None:
        """Run probes when due until ``stop()`` (the agent runs it with ``Running``)."""
        try:
            with self._cond:
                if self._stopped:
                    return
                self.ready.set()
                self._schedule()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _schedule(self) -> None:
        """The loop of ``run()``; called holding ``_cond``, which it releases while it waits."""
        while not self._stopped:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, w = heapq.heappop(self._heap)
                if not w.stopped:
                    self._pool.submit(self._probe, w)
            wait = self._heap[0][0] - now if self._heap else None
            self._cond.wait(wait)

    def _probe(self, w: _Worker) -> None:
        ok, message = run_probe(self.cri, w.cid, w.container, w.probe, w.host)
        if self.on_result is not None:
            self.on_result(w.kind, ok)
        flipped = False
        with self._cond:
            if w.stopped or self._stopped:
                return
            gated = (
                w.kind != "startup"
                and self._workers.get((w.cid, "startup")) is not None
                and not self._workers[(w.cid, "startup")].result
            )
            threshold = max(1, w.probe.failure_threshold)
            if not gated and ok:
                w.successes, w.failures = w.successes + 1, 0
                if not w.result and w.successes >= max(1, w.probe.success_threshold):
                    w.result = flipped = True
                if w.kind == "startup" and w.result:
                    w.stopped = True  # a passed startup probe is not run again
            elif not gated:
                w.failures, w.successes = w.failures + 1, 0
                w.last_message = message
                if w.result and w.failures >= threshold:
                    w.result, flipped = False, True
                # A startup probe starts failed: it never flips, it runs out of attempts.
                flipped = flipped or (w.kind == "startup" and w.failures == threshold)
            if not w.stopped:
                self._push(time.monotonic() + max(1, w.probe.period_seconds), w)
                self._cond.notify()
        if not ok:
            log.info("%s probe of %s/%s failed: %s", w.kind, w.pod, w.container.name, message)
        if flipped:
            self.on_change(w.uid, w.cid, w.kind, message)

    def startup_failed(self, cid: str) -> bool:
        with self._cond:
            w = self._workers.get((cid, "startup"))
            return w is not None and w.failures >= max(1, w.probe.failure_threshold)

    def liveness_failed(self, cid: str) -> bool:
        with self._cond:
            w = self._workers.get((cid, "liveness"))
            return w is not None and not w.result


def _port(value: object, container: pod_pb2.Container) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    from google.protobuf import struct_pb2

    assert isinstance(value, struct_pb2.Value)
    if value.HasField("number_value"):
        return int(value.number_value)
    name = value.string_value
    if name.isdigit():
        return int(name)
    for p in container.ports:
        if p.name == name:
            return p.container_port
    raise ValueError(f'no container port named "{name}"')


def run_probe(
    cri: CriClient, cid: str, container: pod_pb2.Container, probe: pod_pb2.Probe, host: str
) -> tuple[bool, str]:
    """Run one probe once: (passed, why it failed)."""
    timeout = max(1, probe.timeout_seconds)
    try:
        if probe.exec.command:
            r = cri.exec_sync(cid, list(probe.exec.command), timeout_seconds=timeout)
            out = (r.stdout + r.stderr).decode(errors="replace").strip()
            return r.exit_code == 0, f"command exited with {r.exit_code}: {out[:200]}"
        if probe.http_get.ByteSize():
            g = probe.http_get
            url = (
                f"{(g.scheme or 'HTTP').lower()}://{g.host or host}:"
                f"{_port(g.port, container)}{g.path or '/'}"
            )
            req = urllib.request.Request(url, headers={h.name: h.value for h in g.http_headers})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    code = resp.status
            except urllib.error.HTTPError as e:
                code = e.code
            return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"
        if probe.HasField("grpc"):
            return _grpc_check(host, probe.grpc, timeout)
        if probe.tcp_socket.ByteSize():
            t = probe.tcp_socket
            port = _port(t.port, container)
            with socket.create_connection((t.host or host, port), timeout=timeout):
                return True, ""
        return True, ""
    except CriError as e:
        return False, str(e)
    except (OSError, ValueError) as e:
        return False, f"probe failed: {e}"


def _grpc_check(host: str, action: pod_pb2.GRPCAction, timeout: int) -> tuple[bool, str]:
    """The gRPC health protocol, as kubelet speaks it: plain text (no TLS) to the pod's
    address; only SERVING passes."""
    target = f"{host}:{action.port}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=action.service), timeout=timeout
            )
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, f"timeout: health rpc did not complete within {timeout}s"
            return False, f"failed to connect service {target!r}: {code.name if code else e}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return False, f'service unhealthy (responded with "{status}")'
    return True, ""
