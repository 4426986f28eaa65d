"""Pod-level resources (``spec.resources``) and containers' ``resizePolicy``.

A pod may state requests and limits for CPU and memory as a whole; its containers then share
that budget. The rules (core/v1): only ``cpu`` and ``memory``; a pod-level limit without a
request defaults the request to it; requests never exceed limits; the containers' requests
together stay within the pod's request, and no container's limit exceeds the pod's. The
scheduler reserves the pod-level request, where there is one, instead of the sum of the
containers' requests.

``resizePolicy`` says what an in-place resize of a running container would need
(``NotRequired`` or ``RestartContainer`` per resource). hakube stores and validates it but
does not resize running containers: their resources cannot be changed in a pod, as on
Kubernetes without in-place resize.
"""

from __future__ import annotations

from collections.abc import Iterator

from hakube.api import quantity
from hakube.api.v1 import pod_pb2

POD_RESOURCES = ("cpu", "memory")
RESIZE_RESTART = ("NotRequired", "RestartContainer")


def default(spec: pod_pb2.PodSpec) -> None:
    """A pod-level limit without a request makes the request equal to it."""
    res = spec.resources
    for name, limit in res.limits.items():
        if name not in res.requests:
            res.requests[name] = limit


def _amount(name: str, text: str) -> int:
    return quantity.cpu_millis(text) if name == "cpu" else quantity.memory_bytes(text)


def problems(spec: pod_pb2.PodSpec, path: str = "spec") -> Iterator[tuple[str, str]]:
    """(field path, message) for each broken rule of pod-level ``resources``; the containers'
    ``resizePolicy`` is checked per container (``check_resize``)."""
    if not spec.HasField("resources"):
        return
    res = spec.resources
    where = f"{path}.resources"
    pod: dict[str, dict[str, int]] = {"requests": {}, "limits": {}}
    for kind in ("requests", "limits"):
        for name, text in sorted(getattr(res, kind).items()):
            if name not in POD_RESOURCES:
                yield f"{where}.{kind}[{name}]", "only cpu and memory may be set for a pod"
                continue
            try:
                pod[kind][name] = _amount(name, text)
            except ValueError:
                yield f"{where}.{kind}[{name}]", f'invalid quantity "{text}"'
    for name, req in sorted(pod["requests"].items()):
        if name in pod["limits"] and req > pod["limits"][name]:
            yield f"{where}.requests[{name}]", f"must be less than or equal to the {name} limit"
    if not pod["requests"] and not pod["limits"]:
        return
    for name in POD_RESOURCES:
        total = 0
        for i, c in enumerate(spec.containers):
            cp = f"{path}.containers[{i}].resources"
            try:
                total += _amount(name, c.resources.requests.get(name, ""))
                limit = _amount(name, c.resources.limits.get(name, ""))
            except ValueError:
                continue  # the container checks name it
            if name in pod["limits"] and limit > pod["limits"][name]:
                yield (
                    f"{cp}.limits[{name}]",
                    f"must be less than or equal to the pod-level {name} limit",
                )
        if name in pod["requests"] and total > pod["requests"][name]:
            yield (
                f"{where}.requests[{name}]",
                f"must be at least the containers' {name} requests together",
            )


RESIZE_WARNING = (
    "in-place resize is not supported on this cluster; the policy is stored and has no effect"
)
"""Why a valid ``resizePolicy`` is accepted with a warning: pods are never resized in place
(a resources change of a running pod is refused), so the policy is never consulted."""


def check_resize(
    c: pod_pb2.Container,
    where: str,
    out: list[tuple[str, str]],
    warnings: list[str],
    *,
    init: bool,
) -> None:
    """Append (field path, message) for each broken rule of the ``resizePolicy`` of ``c``, the
    container at ``where`` (an init container when ``init``), and to ``warnings`` that the
    policy has no effect here."""
    policies = c.resize_policy
    if not policies:
        return
    if init:
        out.append((f"{where}.resizePolicy", "not supported for init containers"))
        return
    warnings.append(f"{where}.resizePolicy: {RESIZE_WARNING}")
    seen: set[str] = set()
    for j, rp in enumerate(policies):
        rp_where = f"{where}.resizePolicy[{j}]"
        if rp.resource_name not in POD_RESOURCES:
            out.append((f"{rp_where}.resourceName", f'unsupported value "{rp.resource_name}"'))
        elif rp.resource_name in seen:
            out.append((f"{rp_where}.resourceName", f'duplicate resource "{rp.resource_name}"'))
        seen.add(rp.resource_name)
        if rp.restart_policy not in RESIZE_RESTART:
            out.append(
                (
                    f"{rp_where}.restartPolicy",
                    f'unsupported value "{rp.restart_policy}" ({", ".join(RESIZE_RESTART)})',
                )
            )


def pod_request(spec: pod_pb2.PodSpec, name: str) -> str | None:
    """The pod-level request for ``name`` (a quantity), or None when the pod has none."""
    value = spec.resources.requests.get(name)
    return value if value else None
