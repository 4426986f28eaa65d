"""What the agent runs in or against a container, and when it is valid (core/v1).

Probes: exactly one handler (``exec``, ``httpGet``, ``tcpSocket`` or ``grpc``), ports in range,
no negative timings, and a success threshold of 1 for liveness and startup probes (a container
is either alive or restarted). Lifecycle hooks (``postStart``, ``preStop``): exactly one of
``exec``, ``httpGet`` or ``sleep`` (``tcpSocket`` is kept in the type for old manifests and
refused, as Kubernetes never runs it). Init containers take probes and hooks only when they
are sidecars (``restartPolicy: Always``), the only container-level restart policy there is.
"""

from __future__ import annotations

from collections.abc import Iterator

from hakube.api.v1 import pod_pb2

_KINDS = (("livenessProbe", "liveness_probe"), ("readinessProbe", "readiness_probe"),
          ("startupProbe", "startup_probe"))  # fmt: skip
_TIMINGS = (
    ("initialDelaySeconds", "initial_delay_seconds"),
    ("timeoutSeconds", "timeout_seconds"),
    ("periodSeconds", "period_seconds"),
    ("successThreshold", "success_threshold"),
    ("failureThreshold", "failure_threshold"),
)
"""A probe's timing fields: (JSON name, message attribute)."""


def _handlers(p: pod_pb2.Probe) -> list[str]:
    found = []
    if p.exec.command:
        found.append("exec")
    if p.http_get.ByteSize():
        found.append("httpGet")
    if p.tcp_socket.ByteSize():
        found.append("tcpSocket")
    if p.HasField("grpc"):
        found.append("grpc")
    return found


def is_sidecar(c: pod_pb2.Container) -> bool:
    """An init container that keeps running beside the app containers."""
    return c.HasField("restart_policy") and c.restart_policy == "Always"


def problems(spec: pod_pb2.PodSpec, path: str = "spec") -> Iterator[tuple[str, str]]:
    for i, c in enumerate(spec.init_containers):
        where = f"{path}.initContainers[{i}]"
        if c.HasField("restart_policy") and c.restart_policy != "Always":
            yield f"{where}.restartPolicy", f'unsupported value "{c.restart_policy}" (Always)'
        if is_sidecar(c):
            yield from _container(c, where)
            continue
        for json_name, field in _KINDS:
            if c.HasField(field):
                yield f"{where}.{json_name}", "may not be set for init containers (only sidecars)"
        if c.HasField("lifecycle"):
            yield f"{where}.lifecycle", "may not be set for init containers (only sidecars)"
    for i, c in enumerate(spec.containers):
        where = f"{path}.containers[{i}]"
        if c.HasField("restart_policy"):
            yield f"{where}.restartPolicy", "may only be set for init containers"
        yield from _container(c, where)


def _container(c: pod_pb2.Container, path: str) -> Iterator[tuple[str, str]]:
    for hook in ("post_start", "pre_stop") if c.HasField("lifecycle") else ():
        if not c.lifecycle.HasField(hook):
            continue
        handler: pod_pb2.LifecycleHandler = getattr(c.lifecycle, hook)
        where = f"{path}.lifecycle.{'postStart' if hook == 'post_start' else 'preStop'}"
        kinds = [k for k, present in (("exec", bool(handler.exec.command)),
                 ("httpGet", handler.http_get.ByteSize() > 0),
                 ("sleep", handler.HasField("sleep"))) if present]  # fmt: skip
        if handler.tcp_socket.ByteSize():
            yield f"{where}.tcpSocket", "not supported for lifecycle hooks"
        elif not kinds:
            yield where, "must specify a handler type (exec, httpGet or sleep)"
        elif len(kinds) > 1:
            yield where, f"may not specify more than 1 handler type ({', '.join(kinds)})"
        if handler.HasField("sleep") and handler.sleep.seconds <= 0:
            yield f"{where}.sleep.seconds", "must be greater than 0"
    yield from _probes(c, path)


def _probes(c: pod_pb2.Container, path: str) -> Iterator[tuple[str, str]]:
    for json_name, field in _KINDS:
        if not c.HasField(field):
            continue
        probe: pod_pb2.Probe = getattr(c, field)
        where = f"{path}.{json_name}"
        handlers = _handlers(probe)
        if not handlers:
            yield where, "must specify a handler type (exec, httpGet, tcpSocket or grpc)"
        elif len(handlers) > 1:
            yield where, f"may not specify more than 1 handler type ({', '.join(handlers)})"
        if probe.HasField("grpc") and not 0 < probe.grpc.port < 65536:
            yield f"{where}.grpc.port", "must be between 1 and 65535"
        for name, attr in _TIMINGS:
            if getattr(probe, attr) < 0:
                yield f"{where}.{name}", "must be greater than or equal to 0"
        if field != "readiness_probe" and probe.success_threshold > 1:
            yield f"{where}.successThreshold", "must be 1"
