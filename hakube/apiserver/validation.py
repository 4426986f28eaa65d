"""Validation and defaulting of objects before they reach the store.

Defaults follow Kubernetes (restartPolicy Always, 25 % surge, backoffLimit 6, ...). Validation
collects every problem with its field path; the first ones go into one error line, Kubernetes
style: ``Pod "web" is invalid: spec.containers[0].image: required value``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from hakube.api import containerhandlers, poddns, podpaths, podresources, podsecurity, profiles
from hakube.api.kinds import Kind
from hakube.api.labels import SelectorError, from_label_selector, matcher
from hakube.api.v1 import core_pb2, meta_pb2, pod_pb2, workloads_pb2
from hakube.apiserver import apiwarnings
from hakube.apiserver.authz import validation as rbac_validation
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation_jobs import check_job_spec

MAX_ANNOTATIONS_BYTES = 256 * 1024
NODE_PORT_RANGE = (30000, 32767)
"""Where Services' node ports come from: Kubernetes' default ``--service-node-port-range``."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_NAME_KINDS = {"Namespace", "Service"}


class Problems:
    """Collects (path, message) pairs, and warnings for an object that is accepted anyway
    (``path: text``, sent back to the writer, see apiwarnings)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_for(self, kind: Kind, name: str) -> None:
        if not self.items:
            return
        shown = "; ".join(f"{p}: {m}" for p, m in self.items[:3])
        more = f" (and {len(self.items) - 3} more)" if len(self.items) > 3 else ""
        raise Invalid(f'{kind.name} "{name}" is invalid: {shown}{more}')


def check_name(value: str, path: str, probs: Problems, label: bool = False) -> None:
    if not value:
        probs.add(path, "required value")
        return
    limit, rx, what = (
        (63, _DNS_LABEL, "DNS-1123 label") if label else (253, _DNS_SUBDOMAIN, "DNS-1123 subdomain")
    )
    if len(value) > limit or not rx.match(value):
        probs.add(
            path,
            f'"{value}" is not a valid {what} (lower-case letters, digits, "-"'
            f"{'' if label else ', .'}; at most {limit} characters)",
        )


def check_qualified_name(key: str, path: str, probs: Problems, what: str = "label key") -> None:
    """``[prefix/]name``: a DNS-1123 subdomain prefix and a 63-character name (label keys,
    scheduling gates, finalizers)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        probs.add(path, f'prefix "{prefix}" is not a DNS-1123 subdomain')
    if not name or len(name) > 63 or not _QUALIFIED.match(name):
        probs.add(path, f"invalid {what} (alphanumerics, '-', '_', '.'; at most 63 characters)")


def check_labels(labels: Any, path: str, probs: Problems) -> None:
    for key in labels:
        value = labels[key]
        if "/" in key or len(key) > 63 or not _QUALIFIED.match(key):  # else a valid plain key
            check_qualified_name(key, f"{path}[{key}]", probs)
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            probs.add(f"{path}[{key}]", f'invalid label value "{value}"')


def validate_meta(kind: Kind, meta: meta_pb2.ObjectMeta, probs: Problems) -> None:
    if kind.name in rbac_validation.CHECKS:
        rbac_validation.check_path_segment_name(meta.name, "metadata.name", probs)
    else:
        check_name(meta.name, "metadata.name", probs, label=kind.name in _LABEL_NAME_KINDS)
    if kind.namespaced:
        check_name(meta.namespace, "metadata.namespace", probs, label=True)
    elif meta.namespace:
        probs.add("metadata.namespace", f"{kind.name} is not namespaced")
    check_labels(meta.labels, "metadata.labels", probs)
    annotations = meta.annotations
    if annotations:
        size = sum(len(k) + len(v) for k, v in annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            probs.add("metadata.annotations", f"total size {size} exceeds {MAX_ANNOTATIONS_BYTES}")


# -- pods ----------------------------------------------------------------------------------------


def default_probe(p: pod_pb2.Probe) -> None:
    p.timeout_seconds = p.timeout_seconds or 1
    p.period_seconds = p.period_seconds or 10
    p.success_threshold = p.success_threshold or 1
    p.failure_threshold = p.failure_threshold or 3


_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_NOT_LINUX = "not supported on this cluster: its nodes run Linux only"


def check_pod_spec(
    spec: pod_pb2.PodSpec,
    path: str,
    probs: Problems,
    allowed_restart: tuple[str, ...] = ("Always", "OnFailure", "Never"),
    claim_volumes: tuple[str, ...] = (),
) -> None:
    """Fill in a pod spec's defaults (in place) and validate it, in one pass over its volumes
    and one over its containers: every create pays for this, so each container is visited once
    for all its defaults and checks (``_container``), and a field's rules run only when the
    field is set.

    ``claim_volumes``: volumes a StatefulSet adds from its volumeClaimTemplates, which its
    containers mount by name without listing them among the pod's volumes."""
    out = probs.items
    if spec.HasField("resources"):
        podresources.default(spec)
    spec.restart_policy = spec.restart_policy or "Always"
    spec.dns_policy = spec.dns_policy or "ClusterFirst"
    spec.scheduler_name = spec.scheduler_name or "default-scheduler"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    if spec.HasField("security_context"):
        sc = spec.security_context
        if sc.HasField("windows_options"):
            out.append((f"{path}.securityContext.windowsOptions", _NOT_LINUX))
        profiles.check_context(sc, f"{path}.securityContext", out)
    containers = spec.containers
    if not containers:
        out.append((f"{path}.containers", "required value: at least one container"))
    if spec.restart_policy not in allowed_restart:
        out.append(
            (
                f"{path}.restartPolicy",
                f'unsupported value "{spec.restart_policy}": one of {", ".join(allowed_restart)}',
            )
        )
    volumes: set[str] = set()
    for i, v in enumerate(spec.volumes):
        vp = f"{path}.volumes[{i}]"
        if not (v.name and len(v.name) <= 63 and _DNS_LABEL.match(v.name)):
            check_name(v.name, f"{vp}.name", probs, label=True)
        if v.name in volumes:
            out.append((f"{vp}.name", f'duplicate volume "{v.name}"'))
        volumes.add(v.name)
        if v.HasField("image"):
            out.append(
                (f"{vp}.image", "not supported on this cluster: image volumes are not enabled")
            )
        podpaths.check_volume(v, vp, out)
    if claim_volumes:
        volumes.update(claim_volumes)
    names: set[str] = set()
    for i, c in enumerate(spec.init_containers):
        _container(c, f"{path}.initContainers[{i}]", True, names, volumes, probs)
    for i, c in enumerate(containers):
        _container(c, f"{path}.containers[{i}]", False, names, volumes, probs)
    out += poddns.problems(spec, path)
    if spec.HasField("resources"):
        out += podresources.problems(spec, path)
    for i, t in enumerate(spec.tolerations):
        if t.operator not in ("", "Equal", "Exists"):
            out.append((f"{path}.tolerations[{i}].operator", f'unsupported value "{t.operator}"'))
        if t.effect not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            out.append((f"{path}.tolerations[{i}].effect", f'unsupported value "{t.effect}"'))


def _container(
    c: pod_pb2.Container,
    cp: str,
    init: bool,
    names: set[str],
    volumes: set[str],
    probs: Problems,
) -> None:
    """Default and validate one container at ``cp`` (see ``check_pod_spec``); ``names``: the
    container names seen so far, ``volumes``: the names it may mount."""
    out = probs.items
    has = c.HasField
    pull = c.image_pull_policy
    if not pull:
        tag = c.image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        pull = c.image_pull_policy = "Always" if latest else "IfNotPresent"
    if not c.termination_message_path:
        c.termination_message_path = "/dev/termination-log"
    if not c.termination_message_policy:
        c.termination_message_policy = "File"
    name = c.name
    if not (name and len(name) <= 63 and _DNS_LABEL.match(name)):  # else valid: no path built
        check_name(name, f"{cp}.name", probs, label=True)
    if name in names:
        out.append((f"{cp}.name", f'duplicate container name "{name}"'))
    names.add(name)
    if not c.image:
        out.append((f"{cp}.image", "required value"))
    if pull not in _PULL_POLICIES:
        out.append((f"{cp}.imagePullPolicy", f'unsupported value "{pull}"'))
    for j, port in enumerate(c.ports):
        protocol = port.protocol
        if not protocol:
            protocol = port.protocol = "TCP"
        if not 0 < port.container_port < 65536:
            out.append((f"{cp}.ports[{j}].containerPort", "must be between 1 and 65535"))
        if port.host_port and not 0 < port.host_port < 65536:
            out.append((f"{cp}.ports[{j}].hostPort", "must be between 1 and 65535"))
        if protocol not in _PROTOCOLS:
            out.append((f"{cp}.ports[{j}].protocol", f'unsupported value "{protocol}"'))
    for j, env in enumerate(c.env):
        if not _ENV_NAME.match(env.name):
            out.append((f"{cp}.env[{j}].name", f'invalid environment variable "{env.name}"'))
    for j, m in enumerate(c.volume_mounts):
        if m.name not in volumes:
            out.append((f"{cp}.volumeMounts[{j}].name", f'volume "{m.name}" not found'))
        if not m.mount_path.startswith("/"):
            out.append((f"{cp}.volumeMounts[{j}].mountPath", "must be an absolute path"))
        if why := podpaths.sub_path_problem(m):
            out.append((f"{cp}.volumeMounts[{j}].subPath", why))
    if has("resources"):
        res = c.resources
        for rname, amounts in (("limits", res.limits), ("requests", res.requests)):
            for key in amounts:  # (a map's items() view is slower than its keys)
                if not _QUANTITY.match(qty := amounts[key]):
                    out.append((f"{cp}.resources.{rname}[{key}]", f'invalid quantity "{qty}"'))
        if res.claims:
            out.append(
                (
                    f"{cp}.resources.claims",
                    "not supported on this cluster: dynamic resource allocation is not enabled",
                )
            )
    if has("security_context"):
        sc = c.security_context
        if sc.HasField("windows_options"):
            out.append((f"{cp}.securityContext.windowsOptions", _NOT_LINUX))
        profiles.check_context(sc, f"{cp}.securityContext", out)
    podresources.check_resize(c, cp, out, probs.warnings, init=init)
    for field in containerhandlers.PROBES:
        if has(field) and (probe := getattr(c, field)).ByteSize():
            default_probe(probe)
    containerhandlers.check_container(c, cp, out, init=init)


_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def check_template(
    spec: Any,
    path: str,
    probs: Problems,
    selector_required: bool = True,
    allowed_restart: tuple[str, ...] = ("Always",),
    claim_volumes: tuple[str, ...] = (),
) -> None:
    """Selector present, template labels matching it, and a valid pod spec."""
    template = spec.template
    check_labels(template.metadata.labels, f"{path}.template.metadata.labels", probs)
    if not spec.HasField("selector") or not (
        spec.selector.match_labels or spec.selector.match_expressions
    ):
        if selector_required:
            probs.add(f"{path}.selector", "required value")
    else:
        try:
            match = matcher(from_label_selector(spec.selector))
            if match is not None and not match(dict(template.metadata.labels)):
                probs.add(
                    f"{path}.template.metadata.labels",
                    "does not match the selector (`selector` does not match template `labels`)",
                )
        except SelectorError as exc:
            probs.add(f"{path}.selector", str(exc))
    check_pod_spec(template.spec, f"{path}.template.spec", probs, allowed_restart, claim_volumes)


# -- per kind ------------------------------------------------------------------------------------


def _pod(m: pod_pb2.Pod, probs: Problems) -> None:
    check_pod_spec(m.spec, "spec", probs)
    if m.spec.scheduling_gates:
        _scheduling_gates(m, probs)
    if not m.status.phase:
        m.status.phase = "Pending"


def _scheduling_gates(m: pod_pb2.Pod, probs: Problems) -> None:
    """Gates keep a pod out of scheduling until removed (the scheduler skips gated pods); a
    gated pod says so in its PodScheduled condition, as Kubernetes' API server does."""
    seen: set[str] = set()
    for i, g in enumerate(m.spec.scheduling_gates):
        check_qualified_name(g.name, f"spec.schedulingGates[{i}].name", probs, "gate name")
        if g.name in seen:
            probs.add(f"spec.schedulingGates[{i}].name", f'duplicate gate "{g.name}"')
        seen.add(g.name)
    if not seen:
        return
    if m.spec.node_name:
        probs.add("spec.nodeName", "cannot be set until all schedulingGates have been removed")
    if not any(c.type == "PodScheduled" for c in m.status.conditions):
        m.status.conditions.add(
            type="PodScheduled",
            status="False",
            reason="SchedulingGated",
            message="Scheduling is blocked due to non-empty scheduling gates",
        )


def _replicas(spec: Any, path: str, probs: Problems) -> None:
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if spec.replicas < 0:
        probs.add(f"{path}.replicas", "must be greater than or equal to 0")


def _replica_set(m: workloads_pb2.ReplicaSet, probs: Problems) -> None:
    _replicas(m.spec, "spec", probs)
    check_template(m.spec, "spec", probs)


def _deployment(m: workloads_pb2.Deployment, probs: Problems) -> None:
    _replicas(m.spec, "spec", probs)
    s = m.spec.strategy
    s.type = s.type or "RollingUpdate"
    if s.type == "RollingUpdate":
        ru = s.rolling_update
        if not ru.HasField("max_surge"):
            ru.max_surge.string_value = "25%"
        if not ru.HasField("max_unavailable"):
            ru.max_unavailable.string_value = "25%"
        for fname in ("max_surge", "max_unavailable"):
            _check_int_or_percent(getattr(ru, fname), f"spec.strategy.rollingUpdate.{fname}", probs)
    elif s.type == "Recreate":
        if s.HasField("rolling_update"):
            probs.add("spec.strategy.rollingUpdate", 'may not be set when type is "Recreate"')
    else:
        probs.add("spec.strategy.type", f'unsupported value "{s.type}": RollingUpdate, Recreate')
    if not m.spec.HasField("revision_history_limit"):
        m.spec.revision_history_limit = 10
    if not m.spec.HasField("progress_deadline_seconds"):
        m.spec.progress_deadline_seconds = 600
    check_template(m.spec, "spec", probs)


def _check_int_or_percent(v: Any, path: str, probs: Problems) -> None:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        if v.number_value < 0 or not float(v.number_value).is_integer():
            probs.add(path, "must be a non-negative integer or a percentage")
    elif kind == "string_value":
        if not re.match(r"^\d+%$", v.string_value):
            probs.add(path, f'"{v.string_value}" must be an integer or a percentage like "25%"')
    else:
        probs.add(path, "must be an integer or a percentage")


def _stateful_set(m: workloads_pb2.StatefulSet, probs: Problems) -> None:
    _replicas(m.spec, "spec", probs)
    m.spec.pod_management_policy = m.spec.pod_management_policy or "OrderedReady"
    if m.spec.pod_management_policy not in ("OrderedReady", "Parallel"):
        probs.add("spec.podManagementPolicy", f'unsupported value "{m.spec.pod_management_policy}"')
    us = m.spec.update_strategy
    us.type = us.type or "RollingUpdate"
    if us.type == "RollingUpdate" and not us.rolling_update.HasField("partition"):
        us.rolling_update.partition = 0
    if us.type not in ("RollingUpdate", "OnDelete"):
        probs.add("spec.updateStrategy.type", f'unsupported value "{us.type}"')
    if not m.spec.HasField("revision_history_limit"):
        m.spec.revision_history_limit = 10
    for i, t in enumerate(m.spec.volume_claim_templates):
        check_name(t.metadata.name, f"spec.volumeClaimTemplates[{i}].metadata.name", probs)
        check_claim_spec(t.spec, f"spec.volumeClaimTemplates[{i}].spec", probs)
    claims = tuple(t.metadata.name for t in m.spec.volume_claim_templates)
    check_template(m.spec, "spec", probs, claim_volumes=claims)


def _daemon_set(m: workloads_pb2.DaemonSet, probs: Problems) -> None:
    us = m.spec.update_strategy
    us.type = us.type or "RollingUpdate"
    if us.type == "RollingUpdate" and not us.rolling_update.HasField("max_unavailable"):
        us.rolling_update.max_unavailable.number_value = 1
    if us.type not in ("RollingUpdate", "OnDelete"):
        probs.add("spec.updateStrategy.type", f'unsupported value "{us.type}"')
    if not m.spec.HasField("revision_history_limit"):
        m.spec.revision_history_limit = 10
    check_template(m.spec, "spec", probs)


def default_job_spec(spec: workloads_pb2.JobSpec) -> None:
    if not spec.HasField("parallelism"):
        spec.parallelism = 1
    if not spec.HasField("completions") and spec.parallelism == 1:
        spec.completions = 1
    if not spec.HasField("backoff_limit"):
        spec.backoff_limit = 6
    spec.completion_mode = spec.completion_mode or "NonIndexed"
    if not spec.HasField("suspend"):
        spec.suspend = False


def _job(m: workloads_pb2.Job, probs: Problems) -> None:
    default_job_spec(m.spec)
    if m.spec.backoff_limit < 0:
        probs.add("spec.backoffLimit", "must be greater than or equal to 0")
    check_job_spec(m.spec, probs)
    check_template(
        m.spec, "spec", probs, selector_required=False, allowed_restart=("OnFailure", "Never")
    )


def _cron_job(m: workloads_pb2.CronJob, probs: Problems) -> None:
    from croniter import croniter  # imported lazily: only CronJob writes pay for it

    if not m.spec.schedule:
        probs.add("spec.schedule", "required value")
    elif not croniter.is_valid(m.spec.schedule):
        probs.add("spec.schedule", f'invalid cron expression "{m.spec.schedule}"')
    if m.spec.HasField("time_zone"):
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(m.spec.time_zone)
        except Exception:
            probs.add("spec.timeZone", f'unknown time zone "{m.spec.time_zone}"')
    m.spec.concurrency_policy = m.spec.concurrency_policy or "Allow"
    if m.spec.concurrency_policy not in ("Allow", "Forbid", "Replace"):
        probs.add("spec.concurrencyPolicy", f'unsupported value "{m.spec.concurrency_policy}"')
    if not m.spec.HasField("suspend"):
        m.spec.suspend = False
    if not m.spec.HasField("successful_jobs_history_limit"):
        m.spec.successful_jobs_history_limit = 3
    if not m.spec.HasField("failed_jobs_history_limit"):
        m.spec.failed_jobs_history_limit = 1
    jt = m.spec.job_template
    default_job_spec(jt.spec)
    check_job_spec(jt.spec, probs, "spec.jobTemplate.spec")
    check_template(
        jt.spec,
        "spec.jobTemplate.spec",
        probs,
        selector_required=False,
        allowed_restart=("OnFailure", "Never"),
    )


def _service(m: core_pb2.Service, probs: Problems) -> None:
    s = m.spec
    s.type = s.type or "ClusterIP"
    if s.type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        probs.add("spec.type", f'unsupported value "{s.type}"')
    s.session_affinity = s.session_affinity or "None"
    if not s.ports and s.type != "ExternalName" and s.cluster_ip != "None":
        probs.add("spec.ports", "required value")
    seen = set()
    node_ports = s.type in ("NodePort", "LoadBalancer")
    for i, p in enumerate(s.ports):
        p.protocol = p.protocol or "TCP"
        if not 0 < p.port < 65536:
            probs.add(f"spec.ports[{i}].port", "must be between 1 and 65535")
        if p.node_port and not node_ports:
            probs.add(f"spec.ports[{i}].nodePort", f"may not be used when `type` is '{s.type}'")
        elif p.node_port and not NODE_PORT_RANGE[0] <= p.node_port <= NODE_PORT_RANGE[1]:
            probs.add(
                f"spec.ports[{i}].nodePort",
                f"Invalid value: {p.node_port}: provided port is not in the valid range "
                f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}",
            )
        if not p.HasField("target_port"):
            p.target_port.number_value = p.port
        if len(s.ports) > 1 and not p.name:
            probs.add(f"spec.ports[{i}].name", "required when there is more than one port")
        if p.name in seen:
            probs.add(f"spec.ports[{i}].name", f'duplicate port name "{p.name}"')
        seen.add(p.name)
    check_labels(s.selector, "spec.selector", probs)
    _ip_families(s, probs)


def _ip_families(s: core_pb2.ServiceSpec, probs: Problems) -> None:
    """Single-stack IPv4, as this cluster's Service range: defaults filled in as Kubernetes
    does; PreferDualStack gets the one family there is; anything needing IPv6 is refused."""
    if s.type == "ExternalName":
        return
    if not s.HasField("ip_family_policy"):
        s.ip_family_policy = "SingleStack"
    if s.ip_family_policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        probs.add(
            "spec.ipFamilyPolicy",
            f'unsupported value "{s.ip_family_policy}": one of '
            "SingleStack, PreferDualStack, RequireDualStack",
        )
    elif s.ip_family_policy == "RequireDualStack":
        probs.add(
            "spec.ipFamilyPolicy",
            "RequireDualStack: this cluster is not configured for dual-stack Services (IPv4 only)",
        )
    for i, fam in enumerate(s.ip_families):
        if fam not in ("IPv4", "IPv6"):
            probs.add(f"spec.ipFamilies[{i}]", f'unsupported value "{fam}": IPv4 or IPv6')
        elif fam == "IPv6":
            probs.add(f"spec.ipFamilies[{i}]", "IPv6: this cluster's Service range is IPv4 only")
    if len(s.ip_families) > 1 and s.ip_family_policy == "SingleStack":
        probs.add("spec.ipFamilies", "at most one family with ipFamilyPolicy SingleStack")
    if not s.ip_families:
        s.ip_families.append("IPv4")


def _config_map(m: core_pb2.ConfigMap, probs: Problems) -> None:
    for key in [*m.data, *m.binary_data]:
        if not _CONFIG_KEY.match(key):
            probs.add(f"data[{key}]", "keys may contain only alphanumerics, '-', '_' or '.'")


def _secret(m: core_pb2.Secret, probs: Problems) -> None:
    for key, value in m.string_data.items():
        m.data[key] = value.encode()
    m.ClearField("string_data")
    m.type = m.type or "Opaque"
    for key in m.data:
        if not _CONFIG_KEY.match(key):
            probs.add(f"data[{key}]", "keys may contain only alphanumerics, '-', '_' or '.'")


def _hpa(m: workloads_pb2.HorizontalPodAutoscaler, probs: Problems) -> None:
    s = m.spec
    if not s.HasField("min_replicas"):
        s.min_replicas = 1
    if s.HasField("target_cpu_utilization_percentage"):
        metric = s.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = s.target_cpu_utilization_percentage
        s.ClearField("target_cpu_utilization_percentage")
    if s.max_replicas < 1:
        probs.add("spec.maxReplicas", "must be at least 1")
    if s.min_replicas < 1 or s.min_replicas > s.max_replicas:
        probs.add("spec.minReplicas", "must be between 1 and maxReplicas")
    if not s.scale_target_ref.kind or not s.scale_target_ref.name:
        probs.add("spec.scaleTargetRef", "kind and name are required")


def _event(m: core_pb2.Event, probs: Problems) -> None:
    if not m.involved_object.name and not m.involved_object.kind:
        probs.add("involvedObject", "required value")
    m.type = m.type or "Normal"


def _node(m: core_pb2.Node, probs: Problems) -> None:
    for i, t in enumerate(m.spec.taints):
        if t.effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            probs.add(f"spec.taints[{i}].effect", f'unsupported value "{t.effect}"')
        if not t.key:
            probs.add(f"spec.taints[{i}].key", "required value")
    if m.spec.pod_cidr and not m.spec.pod_cidrs:
        m.spec.pod_cidrs.append(m.spec.pod_cidr)
    for i, cidr in enumerate(m.spec.pod_cidrs):
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            probs.add(f"spec.podCIDRs[{i}]", f'"{cidr}" is not a valid CIDR')
    if m.spec.pod_cidrs and m.spec.pod_cidr != m.spec.pod_cidrs[0]:
        probs.add("spec.podCIDRs[0]", f'must match spec.podCIDR "{m.spec.pod_cidr}"')


def _namespace(m: core_pb2.Namespace, probs: Problems) -> None:
    m.status.phase = m.status.phase or "Active"
    level = m.metadata.labels.get(podsecurity.LABEL_ENFORCE)
    if level is not None and (why := podsecurity.level_problem(level)):
        probs.add(f"metadata.labels[{podsecurity.LABEL_ENFORCE}]", why)


_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _pvc(m: core_pb2.PersistentVolumeClaim, probs: Problems) -> None:
    check_claim_spec(m.spec, "spec", probs)
    m.status.phase = m.status.phase or "Pending"


def check_claim_spec(spec: core_pb2.PersistentVolumeClaimSpec, path: str, probs: Problems) -> None:
    """A claim's spec (a PersistentVolumeClaim's, or a StatefulSet's claim template's)."""
    if not spec.access_modes:
        probs.add(f"{path}.accessModes", "required value")
    for i, mode in enumerate(spec.access_modes):
        if mode not in _ACCESS_MODES:
            probs.add(f"{path}.accessModes[{i}]", f'unsupported value "{mode}"')
    if not spec.HasField("volume_mode"):
        spec.volume_mode = "Filesystem"
    elif spec.volume_mode not in ("Filesystem", "Block"):
        probs.add(f"{path}.volumeMode", f'unsupported value "{spec.volume_mode}"')
    for field, json_name in (("data_source", "dataSource"), ("data_source_ref", "dataSourceRef")):
        if spec.HasField(field):
            probs.add(
                f"{path}.{json_name}",
                "not supported on this cluster: no volume provisioner populates claims",
            )


_CHECKS: dict[str, Callable[[Any, Problems], None]] = {
    "Pod": _pod,
    "ReplicaSet": _replica_set,
    "Deployment": _deployment,
    "StatefulSet": _stateful_set,
    "DaemonSet": _daemon_set,
    "Job": _job,
    "CronJob": _cron_job,
    "Service": _service,
    "ConfigMap": _config_map,
    "Secret": _secret,
    "HorizontalPodAutoscaler": _hpa,
    "Event": _event,
    "Node": _node,
    "Namespace": _namespace,
    "PersistentVolumeClaim": _pvc,
    **rbac_validation.CHECKS,
}


def default_and_validate(kind: Kind, msg: Message, *, status_update: bool = False) -> None:
    """Fill in defaults (in place) and raise Invalid listing what is wrong.

    ``status_update``: the spec is the stored one (an UpdateStatus cannot change it), so its
    problems are not the writer's to fix and are not reported: an object stored before a rule
    existed (or past the API) must still get its status, e.g. the agent's refusal of it."""
    probs = Problems()
    meta = msg.metadata  # type: ignore[attr-defined]
    validate_meta(kind, meta, probs)
    check = _CHECKS.get(kind.name)
    if check is not None:
        check(msg, probs)
    if status_update:
        probs.items = [(p, m) for p, m in probs.items if not p.startswith("spec")]
    if probs.warnings and not status_update:
        # Before the verdict: a refused write sends its warnings with its error.
        apiwarnings.add(probs.warnings)
    probs.raise_for(kind, meta.name or meta.generate_name)
