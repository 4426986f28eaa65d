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
    """The handlers ``p`` sets (a set but empty handler does not count, as in Kubernetes)."""
    found = []
    has = p.HasField
    if has("exec") and p.exec.command:
        found.append("exec")
    if has("http_get") and p.http_get.ByteSize():
        found.append("httpGet")
    if has("tcp_socket") and p.tcp_socket.ByteSize():
        found.append("tcpSocket")
    if has("grpc"):
        found.append("grpc")
    return found


def is_sidecar(c: pod_pb2.Container) -> bool:
    """An init container that keeps running beside the app containers."""
    return c.HasField("restart_policy") and c.restart_policy == "Always"


_NOT_FOR_INIT = "may not be set for init containers (only sidecars)"
PROBES = tuple(field for _, field in _KINDS)
"""The probe fields of a container (message attribute names)."""


def check_container(
    c: pod_pb2.Container, where: str, out: list[tuple[str, str]], *, init: bool
) -> None:
    """Append (field path, message) for each broken rule of the probes, hooks and restart
    policy of ``c``, the container at ``where`` (an init container when ``init``): the API
    server calls this in its single pass over a pod's containers."""
    has = c.HasField
    if init:
        if has("restart_policy") and c.restart_policy != "Always":
            out.append(
                (f"{where}.restartPolicy", f'unsupported value "{c.restart_policy}" (Always)')
            )
        if not is_sidecar(c):
            for json_name, field in (*_KINDS, ("lifecycle", "lifecycle")):
                if has(field):
                    out.append((f"{where}.{json_name}", _NOT_FOR_INIT))
            return
    elif has("restart_policy"):
        out.append((f"{where}.restartPolicy", "may only be set for init containers"))
    if has("lifecycle"):
        out += _hooks(c.lifecycle, where)
    for json_name, field in _KINDS:
        if has(field):
            _probe(getattr(c, field), f"{where}.{json_name}", field, out)


def _hooks(lifecycle: pod_pb2.Lifecycle, path: str) -> Iterator[tuple[str, str]]:
    for hook in ("post_start", "pre_stop"):
        if not lifecycle.HasField(hook):
            continue
        handler: pod_pb2.LifecycleHandler = getattr(lifecycle, hook)
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


def _probe(probe: pod_pb2.Probe, where: str, field: str, out: list[tuple[str, str]]) -> None:
    handlers = _handlers(probe)
    if len(handlers) != 1:
        if not handlers:
            out.append((where, "must specify a handler type (exec, httpGet, tcpSocket or grpc)"))
        else:
            why = f"may not specify more than 1 handler type ({', '.join(handlers)})"
            out.append((where, why))
    if probe.HasField("grpc") and not 0 < probe.grpc.port < 65536:
        out.append((f"{where}.grpc.port", "must be between 1 and 65535"))
    if (
        probe.initial_delay_seconds < 0
        or probe.timeout_seconds < 0
        or probe.period_seconds < 0
        or probe.success_threshold < 0
        or probe.failure_threshold < 0
    ):
        for name, attr in _TIMINGS:
            if getattr(probe, attr) < 0:
                out.append((f"{where}.{name}", "must be greater than or equal to 0"))
    if field != "readiness_probe" and probe.success_threshold > 1:
        out.append((f"{where}.successThreshold", "must be 1"))
