"""TEST STAND-IN for the node agent: makes pods "run" without containers. Tests only.

Controller tests need pods that get scheduled, become Running/Ready on cue and honour graceful
deletion, in-process and in milliseconds. ``StandInKubelet`` registers one Node, binds every
pending pod of its namespaces to it, marks bound pods Running and Ready (after ``ready_delay``
seconds, unless ``never_ready(pod)`` says the pod's "containers" do not come up; the status is
the one ``hakube.testing.podphases.running`` builds), and removes pods marked for deletion with
grace 0, as a kubelet does once containers have stopped. It does nothing else: no containers, no
probes, no node lease. Tests of the real path run ``hakube agent`` (tests/agent, and simulated
agents in ``hakube up``); this stand-in exists for the timing control those cannot give.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.client.workqueue import ShutDown, WorkQueue
from hakube.testing.podphases import running


class StandInKubelet:
    """See the module docstring. Use as a context manager."""

    def __init__(
        self,
        client: Client,
        namespaces: set[str],
        *,
        node: str = "standin-node",
        ready_delay: float = 0.0,
        never_ready: Callable[[pod_pb2.Pod], bool] = lambda pod: False,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.node = node
        self.ready_delay = ready_delay
        self.never_ready = never_ready
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self.informer = client.informer(pod_pb2.Pod)
        self.informer.add_handlers(on_add=self._seen, on_update=lambda old, new: self._seen(new))
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(3)]

    def __enter__(self) -> StandInKubelet:
        try:
            self.client.nodes.create(core_pb2.Node(metadata={"name": self.node}))
        except errors.AlreadyExists:
            pass
        self.informer.start()
        self.informer.wait_for_sync(30)
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.queue.shutdown()
        self.informer.stop()
        for t in self._threads:
            t.join(5)

    def _seen(self, pod: pod_pb2.Pod) -> None:
        if pod.metadata.namespace not in self.namespaces:
            return
        key = (pod.metadata.namespace, pod.metadata.name)
        if (
            pod.spec.node_name
            and not pod.metadata.deletion_timestamp
            and pod.status.phase == "Pending"
        ):
            self.queue.add_after(key, self.ready_delay)
        else:
            self.queue.add(key)

    def _work(self) -> None:
        while True:
            try:
                key = self.queue.get(timeout=0.5)
            except ShutDown:
                return
            if key is None:
                continue
            try:
                self._step(key)
                self.queue.forget(key)
            except errors.HakubeError:
                self.queue.retry(key)
            finally:
                self.queue.done(key)

    def _step(self, key: tuple[str, str]) -> None:
        pod = self.informer.get(key[1], key[0])
        if pod is None:
            return
        meta = pod.metadata
        try:
            if meta.deletion_timestamp:
                if meta.HasField("deletion_grace_period_seconds"):
                    self.client.pods.delete(
                        meta.name, namespace=meta.namespace, grace_period_seconds=0, uid=meta.uid
                    )
            elif not pod.spec.node_name:
                self.client.bind(meta.name, self.node, namespace=meta.namespace, uid=meta.uid)
            elif pod.status.phase == "Pending" and not self.never_ready(pod):
                self.client.pods.update_status(running(pod))
        except (errors.NotFound, errors.Conflict):
            pass  # gone or changed; a newer event brings it back
