"""Builders for the CRI request messages, from plain values.

Why: the protobuf constructors are verbose and easy to get subtly wrong (host network must be
set on both the sandbox and each container; a host-network sandbox must not set a hostname;
CPU requests become cgroup shares and limits become CFS quota). These builders encode those
rules once, for the node agent and for tests alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hakube.cri.v1 import api_pb2 as pb

CFS_PERIOD_US = 100_000
"""The CFS period the kubelet uses (100 ms); quota is computed against it."""
MIN_SHARES = 2
"""The kernel's minimum cpu.shares; also what a pod without a CPU request gets."""
MIN_QUOTA_US = 1_000
"""The kernel's minimum CFS quota (1 ms)."""


def linux_resources(
    *, cpu_request_millis: int = 0, cpu_limit_millis: int = 0, memory_limit_bytes: int = 0
) -> pb.LinuxContainerResources:
    """cgroup settings the way the kubelet derives them: the CPU request becomes relative
    ``cpu_shares`` (1024 per core), the CPU limit a CFS quota per 100 ms period, the memory
    limit a hard limit. Zero means "not set"."""
    shares = max(MIN_SHARES, cpu_request_millis * 1024 // 1000)
    res = pb.LinuxContainerResources(cpu_shares=shares, memory_limit_in_bytes=memory_limit_bytes)
    if cpu_limit_millis:
        res.cpu_period = CFS_PERIOD_US
        res.cpu_quota = max(MIN_QUOTA_US, cpu_limit_millis * CFS_PERIOD_US // 1000)
    return res


def _namespaces(
    host_network: bool, host_pid: bool = False, share_pid: bool = False
) -> pb.NamespaceOption:
    # Kubernetes pods give each container its own PID namespace unless shareProcessNamespace.
    return pb.NamespaceOption(
        network=pb.NODE if host_network else pb.POD,
        pid=pb.NODE if host_pid else pb.POD if share_pid else pb.CONTAINER,
        ipc=pb.POD,
    )


def sandbox_config(
    *,
    name: str,
    namespace: str,
    uid: str,
    attempt: int = 0,
    host_network: bool = False,
    hostname: str = "",
    log_directory: str = "",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    cgroup_parent: str = "",
    dns: pb.DNSConfig | None = None,
    port_mappings: Iterable[pb.PortMapping] = (),
    privileged: bool = False,
    share_pid: bool = False,
    resources: pb.LinuxContainerResources | None = None,
) -> pb.PodSandboxConfig:
    """A PodSandboxConfig. For a host-network pod ``hostname`` must stay empty (the runtime
    rejects it, the pod sees the node's name). ``share_pid``: one PID namespace for the pod's
    containers (``shareProcessNamespace``; its containers must say so too)."""
    if host_network and hostname:
        raise ValueError(
            f"pod {namespace}/{name}: a host-network sandbox must not set a "
            f"hostname (got {hostname!r}); leave it empty"
        )
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=attempt),
        hostname=hostname,
        log_directory=log_directory,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        port_mappings=list(port_mappings),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=_namespaces(host_network, share_pid=share_pid),
                privileged=privileged,
            ),
        ),
    )
    if dns is not None:
        cfg.dns_config.CopyFrom(dns)
    if resources is not None:  # pod-level resources (the cgroup_parent carries them too)
        cfg.linux.resources.CopyFrom(resources)
    return cfg


def container_config(
    *,
    name: str,
    image: str,
    command: Iterable[str] = (),
    args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    working_dir: str = "",
    attempt: int = 0,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    log_path: str = "",
    host_network: bool = False,
    privileged: bool = False,
    run_as_user: int | None = None,
    resources: pb.LinuxContainerResources | None = None,
    mounts: Iterable[pb.Mount] = (),
    security: pb.LinuxContainerSecurityContext | None = None,
    share_pid: bool = False,
) -> pb.ContainerConfig:
    """A ContainerConfig; ``log_path`` is relative to the sandbox's log_directory.
    ``security``: the rest of the container's security context (users, groups,
    capabilities, profiles), which ``privileged``/``run_as_user`` add to."""
    sc = pb.LinuxContainerSecurityContext()
    if security is not None:
        sc.CopyFrom(security)
    sc.privileged = sc.privileged or privileged
    sc.namespace_options.CopyFrom(_namespaces(host_network, share_pid=share_pid))
    if run_as_user is not None:
        sc.run_as_user.value = run_as_user
    linux: dict[str, Any] = {"security_context": sc}
    if resources is not None:
        linux["resources"] = resources
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=image),
        command=list(command),
        args=list(args),
        working_dir=working_dir,
        envs=[pb.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
        mounts=list(mounts),
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        log_path=log_path,
        linux=pb.LinuxContainerConfig(**linux),
    )
