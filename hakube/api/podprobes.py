"""What makes a container probe valid (core/v1): exactly one handler (``exec``, ``httpGet``,
``tcpSocket`` or ``grpc``), ports in range, no negative timings, and a success threshold of 1
for liveness and startup probes (a container is either alive or restarted)."""

from __future__ import annotations

from collections.abc import Iterator

from hakube.api.v1 import pod_pb2

_KINDS = (("livenessProbe", "liveness_probe"), ("readinessProbe", "readiness_probe"),
          ("startupProbe", "startup_probe"))  # fmt: skip
_TIMINGS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
            "failureThreshold")  # fmt: skip


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


def problems(spec: pod_pb2.PodSpec, path: str = "spec") -> Iterator[tuple[str, str]]:
    for i, c in enumerate(spec.containers):
        for json_name, field in _KINDS:
            probe: pod_pb2.Probe = getattr(c, field)
            if not probe.ByteSize():
                continue
            where = f"{path}.containers[{i}].{json_name}"
            handlers = _handlers(probe)
            if not handlers:
                yield where, "must specify a handler type (exec, httpGet, tcpSocket or grpc)"
            elif len(handlers) > 1:
                yield where, f"may not specify more than 1 handler type ({', '.join(handlers)})"
            if probe.HasField("grpc") and not 0 < probe.grpc.port < 65536:
                yield f"{where}.grpc.port", "must be between 1 and 65535"
            for name in _TIMINGS:
                attr = "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)
                if getattr(probe, attr) < 0:
                    yield f"{where}.{name}", "must be greater than or equal to 0"
            if field != "readiness_probe" and probe.success_threshold > 1:
                yield f"{where}.successThreshold", "must be 1"
