"""A simulated CRI runtime: a real gRPC server speaking runtime.v1, with no containers behind it.

Why: scheduler and controller tests, and scale tests with hundreds of nodes in one process,
need node agents talking CRI to something that behaves like containerd, starts in
milliseconds and costs next to nothing. It complements real containerd and never replaces it:
tests of real container behaviour (logs, exec, cgroups, images) run against real containerd
(``hakube.testing.containerd``). What it simulates, and how, is in ``hakube.cri.simstate`` and
``hakube.cri.behaviour``.

Two ways to serve it:

* ``SimulatedCri``: one node, one gRPC server on its own socket, exactly what an agent pointed
  at ``unix:///...`` expects. Each server costs one gRPC polling thread; share one ``executor``
  among many to bound the handler threads.
* ``SimulatedFleet``: many nodes behind one gRPC server (one polling thread in all), told apart
  by the ``hakube-sim-node`` request metadata that ``fleet.client(node)`` adds to every call.
  For a thousand nodes in one process.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, NamedTuple

import grpc

from hakube.cri.client import CriClient, Timeouts
from hakube.cri.simstate import SimFailure, SimulatedRuntime, image_id_of, normalize_image
from hakube.cri.v1 import api_pb2_grpc as pb_grpc

NODE_METADATA_KEY = "hakube-sim-node"
"""Request metadata naming the simulated node a call is for (SimulatedFleet only)."""

Resolver = Callable[[grpc.ServicerContext], SimulatedRuntime]


def _serve(resolve: Resolver, method: str, request: Any, context: grpc.ServicerContext) -> Any:
    try:
        return getattr(resolve(context), method)(request)
    except SimFailure as e:
        context.abort(e.code, e.message)


class _RuntimeServicer(pb_grpc.RuntimeServiceServicer):
    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve

    def Version(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "version", r, c)

    def Status(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "status", r, c)

    def RunPodSandbox(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "run_pod_sandbox", r, c)

    def StopPodSandbox(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "stop_pod_sandbox", r, c)

    def RemovePodSandbox(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "remove_pod_sandbox", r, c)

    def PodSandboxStatus(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "pod_sandbox_status", r, c)

    def ListPodSandbox(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "list_pod_sandbox", r, c)

    def CreateContainer(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "create_container", r, c)

    def StartContainer(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "start_container", r, c)

    def StopContainer(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "stop_container", r, c)

    def RemoveContainer(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "remove_container", r, c)

    def ListContainers(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "list_containers", r, c)

    def ContainerStatus(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "container_status", r, c)

    def ExecSync(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "exec_sync", r, c)

    def ContainerStats(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "container_stats", r, c)

    def ListContainerStats(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "list_container_stats", r, c)

    def PodSandboxStats(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "pod_sandbox_stats", r, c)

    def ListPodSandboxStats(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "list_pod_sandbox_stats", r, c)


class _ImageServicer(pb_grpc.ImageServiceServicer):
    def __init__(self, resolve: Resolver) -> None:
        self.resolve = resolve

    def ListImages(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "list_images", r, c)

    def ImageStatus(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "image_status", r, c)

    def PullImage(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "pull_image", r, c)

    def RemoveImage(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "remove_image", r, c)

    def ImageFsInfo(self, r: Any, c: grpc.ServicerContext) -> Any:
        return _serve(self.resolve, "image_fs_info", r, c)


class _Server:
    """A gRPC server with both CRI services, on a unix socket (default) or a TCP address."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        address: str | None,
        executor: futures.ThreadPoolExecutor | None,
        max_workers: int,
        name: str,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if address is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hakube-simcri-")
            address = f"unix://{self._tmp.name}/cri.sock"
        self._address = address
        self._resolve = resolve
        self._executor = executor or futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=f"simcri-{name}"
        )
        self._own_executor = executor is None
        self._server: grpc.Server | None = None
        self.endpoint = ""

    def start(self) -> None:
        server = grpc.server(self._executor)
        pb_grpc.add_RuntimeServiceServicer_to_server(_RuntimeServicer(self._resolve), server)
        pb_grpc.add_ImageServiceServicer_to_server(_ImageServicer(self._resolve), server)
        port = server.add_insecure_port(self._address)
        if self._address.startswith("unix:"):
            self.endpoint = self._address
        else:
            self.endpoint = f"{self._address.rsplit(':', 1)[0]}:{port}"
        server.start()
        self._server = server

    def stop(self, grace: float | None) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._own_executor:
            self._executor.shutdown(wait=False)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class SimulatedCri:
    """One simulated node served over gRPC, like containerd's CRI socket.

    ``address``: ``unix:///path`` or ``127.0.0.1:0`` (port picked at start); by default a unix
    socket in a fresh temp dir, so hundreds of nodes need no ports.
    """

    def __init__(
        self,
        runtime: SimulatedRuntime | None = None,
        *,
        address: str | None = None,
        executor: futures.ThreadPoolExecutor | None = None,
        max_workers: int = 4,
    ) -> None:
        self.runtime = runtime or SimulatedRuntime()
        rt = self.runtime
        self._server = _Server(
            lambda _ctx: rt,
            address=address,
            executor=executor,
            max_workers=max_workers,
            name=rt.node_name,
        )

    @property
    def endpoint(self) -> str:
        """Where to point a CriClient (``unix:///...`` or ``127.0.0.1:PORT``); set by start()."""
        return self._server.endpoint

    def start(self) -> SimulatedCri:
        self._server.start()
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving; idempotent."""
        self._server.stop(grace)

    def __enter__(self) -> SimulatedCri:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class _NodeHeader(grpc.UnaryUnaryClientInterceptor):
    """Adds ``hakube-sim-node: <node>`` to every call of a channel."""

    def __init__(self, node: str) -> None:
        self.node = node

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), (NODE_METADATA_KEY, self.node)]
        return continuation(
            _CallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            ),
            request,
        )


class SimulatedFleet:
    """Many simulated nodes behind one gRPC server; ``client(node)`` talks to one of them.

    A call naming no node, or a node not added, fails UNAVAILABLE, as a runtime that is not
    there would.
    """

    def __init__(self, *, address: str | None = None, max_workers: int = 8) -> None:
        self._nodes: dict[str, SimulatedRuntime] = {}
        self._lock = threading.Lock()
        self._server = _Server(
            self._resolve, address=address, executor=None, max_workers=max_workers, name="fleet"
        )

    def _resolve(self, context: grpc.ServicerContext) -> SimulatedRuntime:
        node = dict(context.invocation_metadata()).get(NODE_METADATA_KEY, "")
        with self._lock:
            rt = self._nodes.get(str(node))
        if rt is None:
            raise SimFailure(
                grpc.StatusCode.UNAVAILABLE,
                f"no simulated node {node!r} behind this endpoint "
                f"(set the {NODE_METADATA_KEY} metadata; see SimulatedFleet)",
            )
        return rt

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    def add_node(self, runtime: SimulatedRuntime) -> SimulatedRuntime:
        """Serve ``runtime`` under its node_name; returns it."""
        with self._lock:
            if runtime.node_name in self._nodes:
                raise ValueError(f"simulated node {runtime.node_name!r} already added")
            self._nodes[runtime.node_name] = runtime
        return runtime

    def remove_node(self, node_name: str) -> None:
        with self._lock:
            self._nodes.pop(node_name, None)

    def node(self, node_name: str) -> SimulatedRuntime:
        with self._lock:
            return self._nodes[node_name]

    def channel(self, node_name: str) -> grpc.Channel:
        """A channel whose calls go to ``node_name``."""
        return grpc.intercept_channel(grpc.insecure_channel(self.endpoint), _NodeHeader(node_name))

    def client(self, node_name: str, *, timeouts: Timeouts | None = None) -> CriClient:
        """A CriClient bound to one node of the fleet (the caller closes it)."""
        return CriClient(
            self.endpoint, timeouts=timeouts or Timeouts(), channel=self.channel(node_name)
        )

    def start(self) -> SimulatedFleet:
        self._server.start()
        return self

    def stop(self, grace: float | None = 0.5) -> None:
        self._server.stop(grace)

    def __enter__(self) -> SimulatedFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "NODE_METADATA_KEY",
    "SimFailure",
    "SimulatedCri",
    "SimulatedFleet",
    "SimulatedRuntime",
    "image_id_of",
    "normalize_image",
]
