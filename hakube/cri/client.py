"""A typed, synchronous client for a CRI runtime (containerd, or hakube's simulated one).

Why synchronous: the node agent drives the runtime from a few worker threads, one pod at a
time, and a blocking call with a deadline is the simplest thing to reason about there. Why a
wrapper at all: every call gets a deadline (a wedged runtime must not wedge the agent), gRPC
errors become the small tree in ``hakube.cri.errors``, and the methods take and return plain
values or the runtime.v1 messages, so callers never touch stubs or ``grpc.RpcError``.

Thread safety: one client may be shared by threads (gRPC channels are thread-safe).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from hakube.cri.errors import CriError, from_rpc_error
from hakube.cri.v1 import api_pb2 as pb
from hakube.cri.v1 import api_pb2_grpc as pb_grpc

CRI_VERSION = "v1"
"""The CRI version this client speaks (package runtime.v1)."""

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"

_MAX_MESSAGE = 16 * 1024 * 1024  # containerd's own limit; lists on a busy node exceed gRPC's 4 MiB

_Resp = TypeVar("_Resp")


def normalize_endpoint(endpoint: str) -> str:
    """Accept ``unix:///path``, a bare absolute socket path, or ``host:port``; return a gRPC
    target."""
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    if endpoint.startswith("unix:") and not endpoint.startswith("unix:///"):
        raise ValueError(
            f"endpoint {endpoint!r}: a unix endpoint needs an absolute path "
            "(unix:///run/containerd/containerd.sock)"
        )
    return endpoint


@dataclass(frozen=True)
class Timeouts:
    """Per-call deadlines in seconds. A runtime that does not answer in time gives
    ``CallTimeout``; the call's effect is then unknown and the caller re-reads state."""

    default: float = 10.0
    """Ordinary calls; containerd answers in milliseconds, 10 s means it is wedged."""
    sandbox: float = 60.0
    """RunPodSandbox / StopPodSandbox / RemovePodSandbox: network setup and teardown."""
    create: float = 60.0
    """CreateContainer / StartContainer / RemoveContainer: snapshot prepare, runc create."""
    pull: float = 300.0
    """PullImage: registry transfer; kubelet's default runtime-request-timeout is 2 min but
    large images routinely need more."""
    stop_margin: float = 10.0
    """Added to a stop's grace period: the runtime needs time after the SIGKILL too."""
    exec_margin: float = 5.0
    """Added to ExecSync's own command timeout."""


@dataclass(frozen=True)
class ExecResult:
    """What ExecSync returns: the command's output and exit code."""

    stdout: bytes
    stderr: bytes
    exit_code: int


class CriClient:
    """RuntimeService and ImageService of one runtime endpoint."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeouts: Timeouts = Timeouts(),
        channel: grpc.Channel | None = None,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.timeouts = timeouts
        self._channel = channel or grpc.insecure_channel(
            self.endpoint,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        self.runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self.images = pb_grpc.ImageServiceStub(self._channel)
        self.on_call: Callable[[str, float, str | None], None] | None = None
        """Called after every call with its method name, seconds taken and, when it failed,
        the gRPC status name (the agent's metrics)."""

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _call(self, request: Any, *, timeout: float | None, subject: str = "") -> Any:
        """Send ``request`` to the RPC it is named after (``XRequest`` goes to ``X``) with a
        deadline; report it to ``on_call``; gRPC errors become ``CriError``s naming ``subject``."""
        name = type(request).DESCRIPTOR.name.removesuffix("Request")
        method = getattr(self.runtime, name, None) or getattr(self.images, name)
        observe = self.on_call
        started = time.monotonic()
        try:
            deadline = timeout if timeout is not None else self.timeouts.default
            response = method(request, timeout=deadline)
        except grpc.RpcError as e:
            if observe is not None:
                code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
                observe(name, time.monotonic() - started, code.name)
            raise from_rpc_error(e, method=name, subject=subject) from e
        if observe is not None:
            observe(name, time.monotonic() - started, None)
        return response

    # -- runtime --------------------------------------------------------------------------------

    def version(self, *, timeout: float | None = None) -> pb.VersionResponse:
        """Runtime name and version; the cheapest liveness probe."""
        return self._call(pb.VersionRequest(version=CRI_VERSION), timeout=timeout)

    def status(self, *, timeout: float | None = None) -> pb.RuntimeStatus:
        """Runtime conditions (RuntimeReady, NetworkReady)."""
        resp = self._call(pb.StatusRequest(), timeout=timeout)
        return resp.status

    def info(self, *, timeout: float | None = None) -> dict[str, str]:
        """The runtime's verbose status details (containerd: ``config``, its configuration as
        JSON, among others)."""
        req = pb.StatusRequest(verbose=True)
        return dict(self._call(req, timeout=timeout).info)

    def conditions(self, *, timeout: float | None = None) -> dict[str, bool]:
        """Runtime conditions as ``{type: status}``."""
        return {c.type: c.status for c in self.status(timeout=timeout).conditions}

    # -- sandboxes ------------------------------------------------------------------------------

    def run_pod_sandbox(
        self,
        config: pb.PodSandboxConfig,
        *,
        runtime_handler: str = "",
        timeout: float | None = None,
    ) -> str:
        """Create and start a sandbox; returns its id."""
        resp = self._call(
            pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
            timeout=timeout or self.timeouts.sandbox,
            subject=_pod_subject(config.metadata),
        )
        return resp.pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        """Kill all processes of the sandbox; succeeds if already stopped."""
        self._call(
            pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
            timeout=timeout or self.timeouts.sandbox,
            subject=f"sandbox {sandbox_id}",
        )

    def remove_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        """Remove the sandbox and its containers; succeeds if already gone."""
        self._call(
            pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
            timeout=timeout or self.timeouts.sandbox,
            subject=f"sandbox {sandbox_id}",
        )

    def pod_sandbox_status(
        self, sandbox_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> pb.PodSandboxStatusResponse:
        """Status of one sandbox; raises NotFound if it does not exist."""
        return self._call(
            pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose),
            timeout=timeout,
            subject=f"sandbox {sandbox_id}",
        )

    def list_pod_sandboxes(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        state: pb.PodSandboxState | None = None,
        sandbox_id: str = "",
        timeout: float | None = None,
    ) -> list[pb.PodSandbox]:
        """Sandboxes whose labels include all of ``labels`` (and, if given, in ``state``)."""
        f = pb.PodSandboxFilter(id=sandbox_id, label_selector=dict(labels or {}))
        if state is not None:
            f.state.state = state
        resp = self._call(
            pb.ListPodSandboxRequest(filter=f),
            timeout=timeout,
        )
        return list(resp.items)

    # -- containers -----------------------------------------------------------------------------

    def create_container(
        self,
        sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
        *,
        timeout: float | None = None,
    ) -> str:
        """Create (not start) a container in a sandbox; returns its id."""
        resp = self._call(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
            ),
            timeout=timeout or self.timeouts.create,
            subject=f"{_pod_subject(sandbox_config.metadata)}/{config.metadata.name}",
        )
        return resp.container_id

    def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        self._call(
            pb.StartContainerRequest(container_id=container_id),
            timeout=timeout or self.timeouts.create,
            subject=f"container {container_id}",
        )

    def stop_container(
        self, container_id: str, *, grace_seconds: int = 30, timeout: float | None = None
    ) -> None:
        """SIGTERM (or the image's stop signal), SIGKILL after ``grace_seconds``; idempotent."""
        self._call(
            pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds),
            timeout=timeout or grace_seconds + self.timeouts.stop_margin,
            subject=f"container {container_id}",
        )

    def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        """Remove a container (killing it if it runs); idempotent."""
        self._call(
            pb.RemoveContainerRequest(container_id=container_id),
            timeout=timeout or self.timeouts.create,
            subject=f"container {container_id}",
        )

    def list_containers(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        sandbox_id: str = "",
        state: pb.ContainerState | None = None,
        container_id: str = "",
        timeout: float | None = None,
    ) -> list[pb.Container]:
        """Containers whose labels include all of ``labels``, optionally of one sandbox or in
        one state."""
        f = pb.ContainerFilter(
            id=container_id, pod_sandbox_id=sandbox_id, label_selector=dict(labels or {})
        )
        if state is not None:
            f.state.state = state
        resp = self._call(
            pb.ListContainersRequest(filter=f),
            timeout=timeout,
        )
        return list(resp.containers)

    def container_status(
        self, container_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> pb.ContainerStatus:
        """Status of one container; raises NotFound if it does not exist."""
        resp = self._call(
            pb.ContainerStatusRequest(container_id=container_id, verbose=verbose),
            timeout=timeout,
            subject=f"container {container_id}",
        )
        return resp.status

    def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 10,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in a running container; a non-zero exit is a result, not an error."""
        resp = self._call(
            pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout_seconds),
            timeout=timeout or (timeout_seconds or 3600) + self.timeouts.exec_margin,
            subject=f"container {container_id}",
        )
        return ExecResult(stdout=resp.stdout, stderr=resp.stderr, exit_code=resp.exit_code)

    # -- stats ----------------------------------------------------------------------------------

    def container_stats(
        self, container_id: str, *, timeout: float | None = None
    ) -> pb.ContainerStats:
        resp = self._call(
            pb.ContainerStatsRequest(container_id=container_id),
            timeout=timeout,
            subject=f"container {container_id}",
        )
        return resp.stats

    def list_container_stats(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        sandbox_id: str = "",
        timeout: float | None = None,
    ) -> list[pb.ContainerStats]:
        f = pb.ContainerStatsFilter(pod_sandbox_id=sandbox_id, label_selector=dict(labels or {}))
        resp = self._call(
            pb.ListContainerStatsRequest(filter=f),
            timeout=timeout,
        )
        return list(resp.stats)

    def pod_sandbox_stats(
        self, sandbox_id: str, *, timeout: float | None = None
    ) -> pb.PodSandboxStats:
        """Sandbox-level usage; containerd needs the sandbox to have a cgroup_parent."""
        resp = self._call(
            pb.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id),
            timeout=timeout,
            subject=f"sandbox {sandbox_id}",
        )
        return resp.stats

    def list_pod_sandbox_stats(
        self, *, labels: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> list[pb.PodSandboxStats]:
        f = pb.PodSandboxStatsFilter(label_selector=dict(labels or {}))
        resp = self._call(
            pb.ListPodSandboxStatsRequest(filter=f),
            timeout=timeout,
        )
        return list(resp.stats)

    # -- images ---------------------------------------------------------------------------------

    def pull_image(
        self,
        image: str,
        *,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
        timeout: float | None = None,
    ) -> str:
        """Pull ``image``; returns the image reference (id) the runtime stored it under.
        Raises ImagePullFailed when the registry does not have it or cannot be reached."""
        req = pb.PullImageRequest(image=pb.ImageSpec(image=image))
        if auth is not None:
            req.auth.CopyFrom(auth)
        if sandbox_config is not None:
            req.sandbox_config.CopyFrom(sandbox_config)
        resp = self._call(
            req,
            timeout=timeout or self.timeouts.pull,
            subject=image,
        )
        return resp.image_ref

    def image_status(self, image: str, *, timeout: float | None = None) -> pb.Image | None:
        """The image if present on the node, else None."""
        resp = self._call(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=image)),
            timeout=timeout,
            subject=image,
        )
        return resp.image if resp.HasField("image") else None

    def list_images(self, *, timeout: float | None = None) -> list[pb.Image]:
        resp = self._call(pb.ListImagesRequest(), timeout=timeout)
        return list(resp.images)

    def remove_image(self, image: str, *, timeout: float | None = None) -> None:
        """Remove an image; succeeds if it is not there."""
        self._call(
            pb.RemoveImageRequest(image=pb.ImageSpec(image=image)),
            timeout=timeout or self.timeouts.create,
            subject=image,
        )

    def image_fs_info(self, *, timeout: float | None = None) -> list[pb.FilesystemUsage]:
        resp = self._call(pb.ImageFsInfoRequest(), timeout=timeout)
        return list(resp.image_filesystems)


def _pod_subject(meta: pb.PodSandboxMetadata) -> str:
    return f"pod {meta.namespace}/{meta.name}" if meta.name else "pod"


__all__ = [
    "CRI_VERSION",
    "DEFAULT_ENDPOINT",
    "CriClient",
    "CriError",
    "ExecResult",
    "Timeouts",
    "normalize_endpoint",
]
