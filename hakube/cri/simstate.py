"""The state machine behind the simulated CRI runtime (served by ``hakube.cri.simulated``).

How it stays light: nothing runs. A container's behaviour (``hakube.cri.behaviour``) is decided
at create time, and its state is computed from the clock whenever it is read: a container that
"sleeps 2 s" is RUNNING until 2 s after its start, then EXITED with its declared code. No thread
or timer per container; one lock per node. A fake clock may be injected to make time jump.

Where it mirrors containerd 1.6 (checked against it by tests/cri): error codes (NOT_FOUND for
unknown ids, UNKNOWN for wrong states and reserved names; RemovePodSandbox / RemoveContainer of
an unknown id succeed, StopPodSandbox of one does not), a host-network sandbox with a hostname
fails, stopping a sandbox kills its containers (exit 137, reason Error), exited containers
report Completed / Error / OOMKilled, logs are written in the CRI format under the sandbox's log
directory, and image names are normalised (``busybox`` is ``docker.io/library/busybox:latest``).
Images "exist" once preloaded or pulled; a pull succeeds only for names in the simulated
registry and otherwise fails NOT_FOUND as a registry miss does. Unlike containerd without CNI,
pod-network sandboxes work and get an address from ``pod_cidr``.

Threading: every public method may be called from any gRPC handler thread; each takes the
node's lock and never blocks inside it (no I/O but appending a few log lines at start).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

import hakube
from hakube.api.timestamps import micro_time
from hakube.cri.behaviour import Behaviour, behaviour_of, run_script
from hakube.cri.v1 import api_pb2 as pb

RUNTIME_NAME = "hakube-simulated"


class SimFailure(Exception):
    """A CRI call the simulated runtime refuses, with the gRPC code containerd would use."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_image(name: str) -> str:
    """containerd's normalisation: add docker.io[/library] and :latest where missing."""
    if name.startswith("sha256:"):
        return name
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if not rest else "docker.io/") + name
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


def image_id_of(name: str) -> str:
    """A stable fake image id (config digest) for a normalised image name."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


@dataclass
class _Image:
    id: str
    tags: list[str]
    size: int


@dataclass
class _Sandbox:
    id: str
    config: pb.PodSandboxConfig
    created_ns: int
    runtime_handler: str
    ip: str
    ready: bool = True

    @property
    def reserved_name(self) -> str:
        m = self.config.metadata
        return f"{m.name}_{m.namespace}_{m.uid}_{m.attempt}"


@dataclass
class _Container:
    id: str
    sandbox_id: str
    config: pb.ContainerConfig
    image_id: str
    behaviour: Behaviour
    created_ns: int
    log_path: str
    state: pb.ContainerState = pb.CONTAINER_CREATED
    started_ns: int = 0
    finished_ns: int = 0
    exit_code: int = 0
    reason: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def reserved_name(self) -> str:
        return f"{self.config.metadata.name}_{self.config.metadata.attempt}_{self.sandbox_id}"


def _labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _u64(v: float) -> pb.UInt64Value:
    return pb.UInt64Value(value=max(0, int(v)))


class SimulatedRuntime:
    """The state of one simulated node. Thread-safe; owns no threads."""

    def __init__(
        self,
        *,
        node_name: str = "sim",
        registry: Iterable[str] = (),
        preloaded: Iterable[str] = (),
        pod_cidr: str = "10.244.0.0/24",
        image_size: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        pullable: Callable[[str], bool] | None = None,
    ) -> None:
        """``registry``: image names PullImage can fetch; ``pullable``: instead of a list, a
        predicate on the normalised name (a registry that has everything but a few);
        ``preloaded``: images present from the start; ``clock``: seconds since the epoch
        (inject a fake one to jump time)."""
        self.node_name = node_name
        self.registry = {normalize_image(n) for n in registry}
        self.pullable = pullable
        self.image_size = image_size
        self.clock = clock
        self._lock = threading.Lock()
        self._images: dict[str, _Image] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._seq = 0
        self._pod_ips = ipaddress.ip_network(pod_cidr).hosts()
        for name in preloaded:
            self._store_image(normalize_image(name))

    # -- helpers --------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self.clock() * 1e9)

    def _new_id(self, kind: str) -> str:
        self._seq += 1
        return hashlib.sha256(f"{self.node_name}/{kind}/{self._seq}".encode()).hexdigest()

    def _store_image(self, name: str) -> _Image:
        iid = image_id_of(name)
        img = self._images.get(iid)
        if img is None:
            img = self._images[iid] = _Image(id=iid, tags=[], size=self.image_size)
        if name not in img.tags and not name.startswith("sha256:"):
            img.tags.append(name)
        return img

    def _find_image(self, ref: str) -> _Image | None:
        if ref.startswith("sha256:"):
            return self._images.get(ref)
        name = normalize_image(ref)
        return next((i for i in self._images.values() if name in i.tags), None)

    def _sandbox(self, sandbox_id: str, what: str) -> _Sandbox:
        sb = self._sandboxes.get(sandbox_id)
        if sb is None:
            raise SimFailure(
                grpc.StatusCode.NOT_FOUND,
                f"an error occurred when try to find sandbox {sandbox_id!r} ({what}): not found",
            )
        return sb

    def _container(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise SimFailure(
                grpc.StatusCode.NOT_FOUND,
                f"an error occurred when try to find container {container_id!r}: not found",
            )
        self._settle(c, self._now_ns())
        return c

    def _settle(self, c: _Container, now: int) -> None:
        """Bring a running container's state up to ``now``: it may have finished by itself."""
        b = c.behaviour
        if c.state == pb.CONTAINER_RUNNING and b.finishes:
            end = c.started_ns + int(b.run_seconds * 1e9)
            if now >= end:
                self._finish(c, end, b.exit_code, "OOMKilled" if b.oom else "")

    @staticmethod
    def _finish(c: _Container, at_ns: int, exit_code: int, reason: str = "") -> None:
        c.state = pb.CONTAINER_EXITED
        c.finished_ns = at_ns
        c.exit_code = exit_code
        c.reason = reason or ("Completed" if exit_code == 0 else "Error")

    def _write_log(self, c: _Container, at_ns: int) -> None:
        if not c.log_path:
            return
        path = Path(c.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = micro_time(at_ns / 1e9)
        with open(path, "a") as f:
            for stream, line in c.behaviour.output:
                f.write(f"{stamp} {stream} F {line}\n")

    # -- runtime --------------------------------------------------------------------------------

    def version(self, req: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=hakube.__version__,
            runtime_api_version="v1",
        )

    def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        return pb.StatusResponse(
            status=pb.RuntimeStatus(
                conditions=[
                    pb.RuntimeCondition(type="RuntimeReady", status=True),
                    pb.RuntimeCondition(type="NetworkReady", status=True),
                ]
            )
        )

    # -- sandboxes ------------------------------------------------------------------------------

    def run_pod_sandbox(self, req: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
        cfg = req.config
        host_net = cfg.linux.security_context.namespace_options.network == pb.NODE
        if host_net and cfg.hostname:
            raise SimFailure(
                grpc.StatusCode.UNKNOWN,
                "failed to create containerd task: unable to set hostname without "
                "a private UTS namespace",
            )
        with self._lock:
            sb = _Sandbox(
                id=self._new_id("sandbox"),
                config=cfg,
                created_ns=self._now_ns(),
                runtime_handler=req.runtime_handler,
                ip="",
            )
            for other in self._sandboxes.values():
                if other.reserved_name == sb.reserved_name:
                    raise SimFailure(
                        grpc.StatusCode.UNKNOWN,
                        f"failed to reserve sandbox name {sb.reserved_name!r}: name "
                        f"is reserved for {other.id!r}",
                    )
            if not host_net:
                sb.ip = str(next(self._pod_ips, "")) or _exhausted(self.node_name)
            self._sandboxes[sb.id] = sb
            return pb.RunPodSandboxResponse(pod_sandbox_id=sb.id)

    def stop_pod_sandbox(self, req: pb.StopPodSandboxRequest) -> pb.StopPodSandboxResponse:
        with self._lock:
            sb = self._sandbox(req.pod_sandbox_id, "stop")
            now = self._now_ns()
            for c in self._containers.values():
                if c.sandbox_id == sb.id:
                    self._settle(c, now)
                    if c.state == pb.CONTAINER_RUNNING:
                        self._finish(c, now, 137)
            sb.ready = False
        return pb.StopPodSandboxResponse()

    def remove_pod_sandbox(self, req: pb.RemovePodSandboxRequest) -> pb.RemovePodSandboxResponse:
        with self._lock:
            if self._sandboxes.pop(req.pod_sandbox_id, None) is not None:
                for cid in [
                    c.id for c in self._containers.values() if c.sandbox_id == req.pod_sandbox_id
                ]:
                    del self._containers[cid]
        return pb.RemovePodSandboxResponse()

    def _sandbox_status(self, sb: _Sandbox) -> pb.PodSandboxStatus:
        return pb.PodSandboxStatus(
            id=sb.id,
            metadata=sb.config.metadata,
            state=pb.SANDBOX_READY if sb.ready else pb.SANDBOX_NOTREADY,
            created_at=sb.created_ns,
            network=pb.PodSandboxNetworkStatus(ip=sb.ip),
            linux=pb.LinuxPodSandboxStatus(
                namespaces=pb.Namespace(options=sb.config.linux.security_context.namespace_options)
            ),
            labels=sb.config.labels,
            annotations=sb.config.annotations,
            runtime_handler=sb.runtime_handler,
        )

    def pod_sandbox_status(self, req: pb.PodSandboxStatusRequest) -> pb.PodSandboxStatusResponse:
        with self._lock:
            sb = self._sandbox(req.pod_sandbox_id, "status")
            return pb.PodSandboxStatusResponse(
                status=self._sandbox_status(sb), timestamp=self._now_ns()
            )

    def list_pod_sandbox(self, req: pb.ListPodSandboxRequest) -> pb.ListPodSandboxResponse:
        f = req.filter
        with self._lock:
            items = []
            for sb in self._sandboxes.values():
                st = self._sandbox_status(sb)
                if f.id and not sb.id.startswith(f.id):
                    continue
                if f.HasField("state") and st.state != f.state.state:
                    continue
                if not _labels_match(sb.config.labels, f.label_selector):
                    continue
                items.append(
                    pb.PodSandbox(
                        id=sb.id,
                        metadata=st.metadata,
                        state=st.state,
                        created_at=st.created_at,
                        labels=st.labels,
                        annotations=st.annotations,
                        runtime_handler=st.runtime_handler,
                    )
                )
        return pb.ListPodSandboxResponse(items=items)

    # -- containers -----------------------------------------------------------------------------

    def create_container(self, req: pb.CreateContainerRequest) -> pb.CreateContainerResponse:
        cfg = req.config
        with self._lock:
            sb = self._sandbox(req.pod_sandbox_id, "create container")
            if not sb.ready:
                raise SimFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"failed to get sandbox container task: no running task found: "
                    f"task {sb.id} not found: not found",
                )
            img = self._find_image(cfg.image.image)
            if img is None:
                raise SimFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"failed to resolve image {cfg.image.image!r}: not found",
                )
            env = {kv.key: kv.value for kv in cfg.envs}
            log_path = ""
            if sb.config.log_directory and cfg.log_path:
                log_path = os.path.join(sb.config.log_directory, cfg.log_path)
            c = _Container(
                id=self._new_id("container"),
                sandbox_id=sb.id,
                config=cfg,
                image_id=img.id,
                created_ns=self._now_ns(),
                log_path=log_path,
                behaviour=behaviour_of([*cfg.command, *cfg.args], cfg.annotations, env),
                env=env,
            )
            for other in self._containers.values():
                if other.reserved_name == c.reserved_name:
                    raise SimFailure(
                        grpc.StatusCode.UNKNOWN,
                        f"failed to reserve container name {cfg.metadata.name!r}: "
                        f"name is reserved for {other.id!r}",
                    )
            self._containers[c.id] = c
            return pb.CreateContainerResponse(container_id=c.id)

    def start_container(self, req: pb.StartContainerRequest) -> pb.StartContainerResponse:
        with self._lock:
            c = self._container(req.container_id)
            if c.state != pb.CONTAINER_CREATED:
                raise SimFailure(
                    grpc.StatusCode.UNKNOWN,
                    f"failed to set starting state for container {c.id!r}: "
                    f"container is in {pb.ContainerState.Name(c.state)} state",
                )
            c.state = pb.CONTAINER_RUNNING
            c.started_ns = self._now_ns()
            self._write_log(c, c.started_ns)
            self._settle(c, c.started_ns)
        return pb.StartContainerResponse()

    def stop_container(self, req: pb.StopContainerRequest) -> pb.StopContainerResponse:
        with self._lock:
            c = self._container(req.container_id)
            if c.state == pb.CONTAINER_RUNNING:
                self._finish(c, self._now_ns(), 137 if c.behaviour.ignore_sigterm else 143)
        return pb.StopContainerResponse()

    def remove_container(self, req: pb.RemoveContainerRequest) -> pb.RemoveContainerResponse:
        with self._lock:
            self._containers.pop(req.container_id, None)
        return pb.RemoveContainerResponse()

    def list_containers(self, req: pb.ListContainersRequest) -> pb.ListContainersResponse:
        f = req.filter
        now = self._now_ns()
        out = []
        with self._lock:
            for c in self._containers.values():
                self._settle(c, now)
                if f.id and not c.id.startswith(f.id):
                    continue
                if f.pod_sandbox_id and c.sandbox_id != f.pod_sandbox_id:
                    continue
                if f.HasField("state") and c.state != f.state.state:
                    continue
                if not _labels_match(c.config.labels, f.label_selector):
                    continue
                out.append(
                    pb.Container(
                        id=c.id,
                        pod_sandbox_id=c.sandbox_id,
                        metadata=c.config.metadata,
                        image=c.config.image,
                        image_ref=c.image_id,
                        state=c.state,
                        created_at=c.created_ns,
                        labels=c.config.labels,
                        annotations=c.config.annotations,
                        image_id=c.image_id,
                    )
                )
        return pb.ListContainersResponse(containers=out)

    def container_status(self, req: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
        with self._lock:
            c = self._container(req.container_id)
            return pb.ContainerStatusResponse(
                status=pb.ContainerStatus(
                    id=c.id,
                    metadata=c.config.metadata,
                    state=c.state,
                    created_at=c.created_ns,
                    started_at=c.started_ns,
                    finished_at=c.finished_ns,
                    exit_code=c.exit_code,
                    image=c.config.image,
                    image_ref=c.image_id,
                    reason=c.reason,
                    labels=c.config.labels,
                    annotations=c.config.annotations,
                    mounts=c.config.mounts,
                    log_path=c.log_path,
                    resources=pb.ContainerResources(linux=c.config.linux.resources),
                    image_id=c.image_id,
                )
            )

    def exec_sync(self, req: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
        with self._lock:
            c = self._container(req.container_id)
            if c.state != pb.CONTAINER_RUNNING:
                raise SimFailure(
                    grpc.StatusCode.UNKNOWN,
                    "failed to exec in container: container is in "
                    f"{pb.ContainerState.Name(c.state)} state",
                )
            env = dict(c.env)
        result = run_script(list(req.cmd), env)
        if req.timeout and (result.seconds > req.timeout or math.isinf(result.seconds)):
            raise SimFailure(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"failed to exec in container: timeout {req.timeout}s exceeded: "
                "context deadline exceeded",
            )
        out = "".join(line + "\n" for stream, line in result.output if stream == "stdout")
        err = "".join(line + "\n" for stream, line in result.output if stream == "stderr")
        return pb.ExecSyncResponse(
            stdout=out.encode(), stderr=err.encode(), exit_code=result.exit_code
        )

    # -- stats ----------------------------------------------------------------------------------

    def _stats(self, c: _Container, now: int) -> pb.ContainerStats:
        self._settle(c, now)
        running = c.state == pb.CONTAINER_RUNNING
        ran_ns = ((now if running else c.finished_ns) - c.started_ns) if c.started_ns else 0
        b = c.behaviour
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=c.id,
                metadata=c.config.metadata,
                labels=c.config.labels,
                annotations=c.config.annotations,
            ),
            cpu=pb.CpuUsage(
                timestamp=now,
                usage_core_nano_seconds=_u64(ran_ns * b.cpu_millis / 1000),
                usage_nano_cores=_u64(b.cpu_millis * 1e6 if running else 0),
            ),
            memory=pb.MemoryUsage(
                timestamp=now,
                working_set_bytes=_u64(b.memory_bytes if running else 0),
                usage_bytes=_u64(b.memory_bytes if running else 0),
                rss_bytes=_u64(b.memory_bytes // 2 if running else 0),
            ),
            writable_layer=pb.FilesystemUsage(
                timestamp=now, used_bytes=_u64(0), inodes_used=_u64(0)
            ),
        )

    def container_stats(self, req: pb.ContainerStatsRequest) -> pb.ContainerStatsResponse:
        with self._lock:
            c = self._container(req.container_id)
            return pb.ContainerStatsResponse(stats=self._stats(c, self._now_ns()))

    def list_container_stats(
        self, req: pb.ListContainerStatsRequest
    ) -> pb.ListContainerStatsResponse:
        f, now = req.filter, self._now_ns()
        with self._lock:
            stats = [
                self._stats(c, now)
                for c in self._containers.values()
                if (not f.id or c.id.startswith(f.id))
                and (not f.pod_sandbox_id or c.sandbox_id == f.pod_sandbox_id)
                and _labels_match(c.config.labels, f.label_selector)
            ]
        return pb.ListContainerStatsResponse(stats=stats)

    def _sandbox_stats(self, sb: _Sandbox, now: int) -> pb.PodSandboxStats:
        cs = [self._stats(c, now) for c in self._containers.values() if c.sandbox_id == sb.id]
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(
                id=sb.id,
                metadata=sb.config.metadata,
                labels=sb.config.labels,
                annotations=sb.config.annotations,
            ),
            linux=pb.LinuxPodSandboxStats(
                cpu=pb.CpuUsage(
                    timestamp=now,
                    usage_core_nano_seconds=_u64(
                        sum(s.cpu.usage_core_nano_seconds.value for s in cs)
                    ),
                    usage_nano_cores=_u64(sum(s.cpu.usage_nano_cores.value for s in cs)),
                ),
                memory=pb.MemoryUsage(
                    timestamp=now,
                    working_set_bytes=_u64(sum(s.memory.working_set_bytes.value for s in cs)),
                ),
                process=pb.ProcessUsage(
                    timestamp=now,
                    process_count=_u64(sum(1 for s in cs if s.memory.working_set_bytes.value)),
                ),
                containers=cs,
            ),
        )

    def pod_sandbox_stats(self, req: pb.PodSandboxStatsRequest) -> pb.PodSandboxStatsResponse:
        with self._lock:
            sb = self._sandbox(req.pod_sandbox_id, "stats")
            return pb.PodSandboxStatsResponse(stats=self._sandbox_stats(sb, self._now_ns()))

    def list_pod_sandbox_stats(
        self, req: pb.ListPodSandboxStatsRequest
    ) -> pb.ListPodSandboxStatsResponse:
        f, now = req.filter, self._now_ns()
        with self._lock:
            stats = [
                self._sandbox_stats(sb, now)
                for sb in self._sandboxes.values()
                if (not f.id or sb.id.startswith(f.id))
                and _labels_match(sb.config.labels, f.label_selector)
            ]
        return pb.ListPodSandboxStatsResponse(stats=stats)

    # -- images ---------------------------------------------------------------------------------

    def _image_msg(self, img: _Image) -> pb.Image:
        return pb.Image(
            id=img.id, repo_tags=img.tags, size=img.size, spec=pb.ImageSpec(image=img.id)
        )

    def list_images(self, req: pb.ListImagesRequest) -> pb.ListImagesResponse:
        with self._lock:
            return pb.ListImagesResponse(images=[self._image_msg(i) for i in self._images.values()])

    def image_status(self, req: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
        with self._lock:
            img = self._find_image(req.image.image)
            return pb.ImageStatusResponse(image=self._image_msg(img) if img else None)

    def pull_image(self, req: pb.PullImageRequest) -> pb.PullImageResponse:
        ref = req.image.image
        name = normalize_image(ref)
        with self._lock:
            if name not in self.registry and not (self.pullable and self.pullable(name)):
                raise SimFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"failed to pull and unpack image {name!r}: failed to resolve "
                    f"reference {name!r}: {name}: not found",
                )
            return pb.PullImageResponse(image_ref=self._store_image(name).id)

    def remove_image(self, req: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
        with self._lock:
            img = self._find_image(req.image.image)
            if img is not None:
                del self._images[img.id]
        return pb.RemoveImageResponse()

    def image_fs_info(self, req: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
        with self._lock:
            used = sum(i.size for i in self._images.values())
            return pb.ImageFsInfoResponse(
                image_filesystems=[
                    pb.FilesystemUsage(
                        timestamp=self._now_ns(),
                        fs_id=pb.FilesystemIdentifier(
                            mountpoint=f"/simulated/{self.node_name}/images"
                        ),
                        used_bytes=_u64(used),
                        inodes_used=_u64(len(self._images)),
                    )
                ]
            )


def _exhausted(node: str) -> str:
    raise SimFailure(
        grpc.StatusCode.RESOURCE_EXHAUSTED, f"node {node}: no pod address left in its pod CIDR"
    )
