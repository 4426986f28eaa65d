"""The columns ``kubectl get`` shows for each kind, computed from typed objects.

Two doors print them: hakubectl's tables (hakube.cli.printers) and the Kubernetes REST API's
Table responses (hakube.apiserver.rest), which real ``kubectl get`` renders. Keeping the one
definition here means both show the same columns with the same values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hakube.api.kinds import Kind
from hakube.api.timestamps import parse_time

NONE = "<none>"
Column = tuple[str, Callable[[Any], str], bool]
"""(header, value of an object, shown only with -o wide)."""


# -- small formatting helpers ------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """kubectl's short durations: 45s, 3m20s, 12m, 5h3m, 20h, 3d4h, 120d, 2y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    if y < 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def age(ts: str, now: float | None = None) -> str:
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((now if now is not None else time.time()) - t)


def labels_text(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


def selector_text(sel: Any) -> str:
    parts = [f"{k}={v}" for k, v in sorted(sel.match_labels.items())]
    for e in sel.match_expressions:
        op = e.operator.lower()
        parts.append(
            f"{e.key} {op} ({','.join(e.values)})"
            if e.values
            else (e.key if op == "exists" else f"!{e.key}")
        )
    return ",".join(parts) or NONE


def type_name(kind: Kind) -> str:
    """``pod``, ``deployment.apps``: how kubectl names a kind in ``TYPE/NAME``."""
    group = kind.api_version.rpartition("/")[0]
    return f"{kind.name.lower()}.{group}" if group else kind.name.lower()


def object_name(kind: Kind, obj: Any) -> str:
    return f"{type_name(kind)}/{obj.metadata.name}"


# -- per-kind columns --------------------------------------------------------------------------


def _pod_status(p: Any) -> str:
    if p.metadata.deletion_timestamp:
        return "Terminating"
    reason = p.status.reason or p.status.phase or "Pending"
    for cs in p.status.container_statuses:
        st = cs.state
        if st.waiting.reason:
            reason = st.waiting.reason
        elif st.HasField("terminated") and st.terminated.reason:
            reason = st.terminated.reason
    return reason


def _pod_ready(p: Any) -> str:
    ready = sum(1 for cs in p.status.container_statuses if cs.ready)
    return f"{ready}/{len(p.spec.containers)}"


def _replicas(spec: Any) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def _containers(tpl: Any) -> str:
    return ",".join(c.name for c in tpl.spec.containers) or NONE


def _images(tpl: Any) -> str:
    return ",".join(c.image for c in tpl.spec.containers) or NONE


def _svc_ports(s: Any) -> str:
    out = []
    for p in s.spec.ports:
        proto = p.protocol or "TCP"
        out.append(f"{p.port}:{p.node_port}/{proto}" if p.node_port else f"{p.port}/{proto}")
    return ",".join(out) or NONE


def _svc_external(s: Any) -> str:
    if s.spec.external_ips:
        return ",".join(s.spec.external_ips)
    if s.spec.type == "ExternalName":
        return s.spec.external_name or NONE
    if s.spec.type == "LoadBalancer":
        return "<pending>"
    return NONE


def _endpoints(e: Any) -> str:
    addrs = []
    for subset in e.subsets:
        ports = [p.port for p in subset.ports] or [0]
        addrs += [f"{a.ip}:{port}" if port else a.ip for a in subset.addresses for port in ports]
    if not addrs:
        return NONE
    more = f" + {len(addrs) - 3} more..." if len(addrs) > 3 else ""
    return ",".join(addrs[:3]) + more


def _node_status(n: Any) -> str:
    status = "Unknown"
    for c in n.status.conditions:
        if c.type == "Ready":
            status = "Ready" if c.status == "True" else "NotReady"
    if n.spec.unschedulable:
        status += ",SchedulingDisabled"
    return status


def _node_roles(n: Any) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in n.metadata.labels if k.startswith(prefix))
    return ",".join(roles) or NONE


def _node_ip(n: Any, kind: str) -> str:
    return next((a.address for a in n.status.addresses if a.type == kind), NONE)


def _job_duration(j: Any) -> str:
    start = parse_time(j.status.start_time)
    if start is None:
        return ""
    end = parse_time(j.status.completion_time) or time.time()
    return human_duration(end - start)


def _hpa_targets(h: Any) -> str:
    out = []
    for m in h.spec.metrics:
        tgt = m.resource.target
        want = (
            f"{tgt.average_utilization}%"
            if tgt.HasField("average_utilization")
            else (tgt.average_value or tgt.value)
        )
        cur = "<unknown>"
        for s in h.status.current_metrics:
            if s.resource.name == m.resource.name and s.resource.current.HasField(
                "average_utilization"
            ):
                cur = f"{s.resource.current.average_utilization}%"
        out.append(f"{m.resource.name}: {cur}/{want}")
    if not out and h.spec.HasField("target_cpu_utilization_percentage"):
        out.append(f"cpu: <unknown>/{h.spec.target_cpu_utilization_percentage}%")
    return ", ".join(out) or NONE


def _event_object(e: Any) -> str:
    io = e.involved_object
    return f"{io.kind.lower()}/{io.name}"


def _age(o: Any) -> str:
    return age(o.metadata.creation_timestamp)


_TEMPLATE_WIDE: list[Column] = [
    ("CONTAINERS", lambda w: _containers(w.spec.template), True),
    ("IMAGES", lambda w: _images(w.spec.template), True),
]
"""The wide columns of a workload with a pod template."""
_SELECTOR_WIDE: Column = ("SELECTOR", lambda w: selector_text(w.spec.selector), True)

COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        ("READY", _pod_ready, False),
        ("STATUS", _pod_status, False),
        (
            "RESTARTS",
            lambda p: str(sum(c.restart_count for c in p.status.container_statuses)),
            False,
        ),
        ("AGE", _age, False),
        ("IP", lambda p: p.status.pod_ip or NONE, True),
        ("NODE", lambda p: p.spec.node_name or NONE, True),
        ("NOMINATED NODE", lambda p: p.status.nominated_node_name or NONE, True),
        ("READINESS GATES", lambda p: NONE, True),
    ],
    "Deployment": [
        ("READY", lambda d: f"{d.status.ready_replicas}/{_replicas(d.spec)}", False),
        ("UP-TO-DATE", lambda d: str(d.status.updated_replicas), False),
        ("AVAILABLE", lambda d: str(d.status.available_replicas), False),
        ("AGE", _age, False),
        *_TEMPLATE_WIDE,
        _SELECTOR_WIDE,
    ],
    "ReplicaSet": [
        ("DESIRED", lambda r: str(_replicas(r.spec)), False),
        ("CURRENT", lambda r: str(r.status.replicas), False),
        ("READY", lambda r: str(r.status.ready_replicas), False),
        ("AGE", _age, False),
        *_TEMPLATE_WIDE,
        _SELECTOR_WIDE,
    ],
    "StatefulSet": [
        ("READY", lambda s: f"{s.status.ready_replicas}/{_replicas(s.spec)}", False),
        ("AGE", _age, False),
        *_TEMPLATE_WIDE,
    ],
    "DaemonSet": [
        ("DESIRED", lambda d: str(d.status.desired_number_scheduled), False),
        ("CURRENT", lambda d: str(d.status.current_number_scheduled), False),
        ("READY", lambda d: str(d.status.number_ready), False),
        ("UP-TO-DATE", lambda d: str(d.status.updated_number_scheduled), False),
        ("AVAILABLE", lambda d: str(d.status.number_available), False),
        ("NODE SELECTOR", lambda d: labels_text(d.spec.template.spec.node_selector), False),
        ("AGE", _age, False),
    ],
    "Job": [
        (
            "COMPLETIONS",
            lambda j: (
                f"{j.status.succeeded}/"
                f"{j.spec.completions if j.spec.HasField('completions') else 1}"
            ),
            False,
        ),
        ("DURATION", _job_duration, False),
        ("AGE", _age, False),
    ],
    "CronJob": [
        ("SCHEDULE", lambda c: c.spec.schedule, False),
        ("SUSPEND", lambda c: str(bool(c.spec.suspend)), False),
        ("ACTIVE", lambda c: str(len(c.status.active)), False),
        (
            "LAST SCHEDULE",
            lambda c: age(c.status.last_schedule_time) if c.status.last_schedule_time else NONE,
            False,
        ),
        ("AGE", _age, False),
    ],
    "Service": [
        ("TYPE", lambda s: s.spec.type or "ClusterIP", False),
        ("CLUSTER-IP", lambda s: s.spec.cluster_ip or NONE, False),
        ("EXTERNAL-IP", _svc_external, False),
        ("PORT(S)", _svc_ports, False),
        ("AGE", _age, False),
        ("SELECTOR", lambda s: labels_text(s.spec.selector), True),
    ],
    "Endpoints": [("ENDPOINTS", _endpoints, False), ("AGE", _age, False)],
    "ConfigMap": [
        ("DATA", lambda c: str(len(c.data) + len(c.binary_data)), False),
        ("AGE", _age, False),
    ],
    "ServiceAccount": [("SECRETS", lambda a: str(len(a.secrets)), False), ("AGE", _age, False)],
    "Secret": [
        ("TYPE", lambda s: s.type or "Opaque", False),
        ("DATA", lambda s: str(len(s.data) + len(s.string_data)), False),
        ("AGE", _age, False),
    ],
    "Namespace": [("STATUS", lambda n: n.status.phase or "Active", False), ("AGE", _age, False)],
    "Node": [
        ("STATUS", _node_status, False),
        ("ROLES", _node_roles, False),
        ("AGE", _age, False),
        ("VERSION", lambda n: n.status.node_info.kubelet_version or NONE, False),
        ("INTERNAL-IP", lambda n: _node_ip(n, "InternalIP"), True),
        ("EXTERNAL-IP", lambda n: _node_ip(n, "ExternalIP"), True),
        ("OS-IMAGE", lambda n: n.status.node_info.os_image or NONE, True),
        ("KERNEL-VERSION", lambda n: n.status.node_info.kernel_version or NONE, True),
        ("CONTAINER-RUNTIME", lambda n: n.status.node_info.container_runtime_version or NONE, True),
    ],
    "Lease": [("HOLDER", lambda lease: lease.spec.holder_identity, False), ("AGE", _age, False)],
    "Event": [
        (
            "LAST SEEN",
            lambda e: age(e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
            False,
        ),
        ("TYPE", lambda e: e.type, False),
        ("REASON", lambda e: e.reason, False),
        ("OBJECT", _event_object, False),
        ("MESSAGE", lambda e: e.message, False),
    ],
    "HorizontalPodAutoscaler": [
        (
            "REFERENCE",
            lambda h: f"{h.spec.scale_target_ref.kind}/{h.spec.scale_target_ref.name}",
            False,
        ),
        ("TARGETS", _hpa_targets, False),
        (
            "MINPODS",
            lambda h: str(h.spec.min_replicas if h.spec.HasField("min_replicas") else 1),
            False,
        ),
        ("MAXPODS", lambda h: str(h.spec.max_replicas), False),
        ("REPLICAS", lambda h: str(h.status.current_replicas), False),
        ("AGE", _age, False),
    ],
    "PersistentVolumeClaim": [
        ("STATUS", lambda c: c.status.phase or "Pending", False),
        ("VOLUME", lambda c: c.spec.volume_name, False),
        ("CAPACITY", lambda c: c.status.capacity.get("storage", ""), False),
        ("ACCESS MODES", lambda c: ",".join(_short_mode(m) for m in c.status.access_modes), False),
        ("STORAGECLASS", lambda c: c.spec.storage_class_name, False),
        ("AGE", _age, False),
    ],
    "PriorityClass": [
        ("VALUE", lambda c: str(c.value), False),
        ("GLOBAL-DEFAULT", lambda c: str(c.global_default).lower(), False),
        ("AGE", _age, False),
    ],
    "RoleBinding": [
        ("ROLE", lambda b: f"{b.role_ref.kind}/{b.role_ref.name}", False),
        ("AGE", _age, False),
    ],
    "ClusterRoleBinding": [
        ("ROLE", lambda b: f"{b.role_ref.kind}/{b.role_ref.name}", False),
        ("AGE", _age, False),
    ],
}


def _short_mode(mode: str) -> str:
    return {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }.get(mode, mode)


def columns(kind: Kind) -> list[Column]:
    """The columns after NAME for ``kind`` (AGE alone for a kind without its own)."""
    return COLUMNS.get(kind.name, _DEFAULT)


_DEFAULT: list[Column] = [("AGE", _age, False)]
