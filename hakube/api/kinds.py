"""The registry of API kinds: how each kind is named, scoped, and which fields are selectable.

Everything that needs to know about kinds generically (the API server, hakubectl, the client)
asks here, so adding a kind means one entry in KINDS and one field in ``api.proto``'s Object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from hakube.api.v1 import api_pb2, core_pb2, pod_pb2, rbac_pb2, workloads_pb2

FieldFn = Callable[[Message], dict[str, str]]


@dataclass(frozen=True)
class Kind:
    """One API kind."""

    name: str
    """Kind as in manifests: ``Pod``."""
    message: type[Message]
    """The generated protobuf class."""
    oneof: str
    """Its field name in ``Object``."""
    api_version: str
    """apiVersion written in manifests (``v1``, ``apps/v1``...)."""
    plural: str
    """Lower-case plural used on the command line (``pods``)."""
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = True
    """Whether the kind has a status that only UpdateStatus may change."""
    extra_fields: FieldFn | None = None
    """Selectable fields beyond metadata.name / metadata.namespace."""
    api_versions: tuple[str, ...] = field(default=())
    """Other apiVersions accepted on input (e.g. autoscaling/v1 for HPA)."""

    @property
    def group(self) -> str:
        """The API group of ``api_version`` ("" for the core group), as RBAC rules name it."""
        return self.api_version.rpartition("/")[0]

    @property
    def field_number(self) -> int:
        return api_pb2.Object.DESCRIPTOR.fields_by_name[self.oneof].number


def _pod_fields(m: Message) -> dict[str, str]:
    assert isinstance(m, pod_pb2.Pod)
    return {
        "spec.nodeName": m.spec.node_name,
        "spec.schedulerName": m.spec.scheduler_name,
        "status.phase": m.status.phase,
        "spec.restartPolicy": m.spec.restart_policy,
        "status.podIP": m.status.pod_ip,
    }


def _event_fields(m: Message) -> dict[str, str]:
    assert isinstance(m, core_pb2.Event)
    io = m.involved_object
    return {
        "involvedObject.kind": io.kind,
        "involvedObject.name": io.name,
        "involvedObject.namespace": io.namespace,
        "involvedObject.uid": io.uid,
        "reason": m.reason,
        "type": m.type,
    }


def _node_fields(m: Message) -> dict[str, str]:
    assert isinstance(m, core_pb2.Node)
    return {"spec.unschedulable": "true" if m.spec.unschedulable else "false"}


def _namespace_fields(m: Message) -> dict[str, str]:
    assert isinstance(m, core_pb2.Namespace)
    return {"status.phase": m.status.phase}


def _secret_fields(m: Message) -> dict[str, str]:
    assert isinstance(m, core_pb2.Secret)
    return {"type": m.type}


KINDS: tuple[Kind, ...] = (
    Kind(
        "Namespace",
        core_pb2.Namespace,
        "namespace",
        "v1",
        "namespaces",
        False,
        ("ns",),
        extra_fields=_namespace_fields,
    ),
    Kind("Node", core_pb2.Node, "node", "v1", "nodes", False, ("no",), extra_fields=_node_fields),
    Kind("Pod", pod_pb2.Pod, "pod", "v1", "pods", True, ("po",), extra_fields=_pod_fields),
    Kind("Service", core_pb2.Service, "service", "v1", "services", True, ("svc",)),
    Kind(
        "Endpoints",
        core_pb2.Endpoints,
        "endpoints",
        "v1",
        "endpoints",
        True,
        ("ep",),
        has_status=False,
    ),
    Kind(
        "ConfigMap",
        core_pb2.ConfigMap,
        "config_map",
        "v1",
        "configmaps",
        True,
        ("cm",),
        has_status=False,
    ),
    Kind(
        "Secret",
        core_pb2.Secret,
        "secret",
        "v1",
        "secrets",
        True,
        (),
        has_status=False,
        extra_fields=_secret_fields,
    ),
    Kind(
        "ServiceAccount",
        core_pb2.ServiceAccount,
        "service_account",
        "v1",
        "serviceaccounts",
        True,
        ("sa",),
        has_status=False,
    ),
    Kind(
        "Lease",
        core_pb2.Lease,
        "lease",
        "coordination.k8s.io/v1",
        "leases",
        True,
        (),
        has_status=False,
    ),
    Kind(
        "Event",
        core_pb2.Event,
        "event",
        "v1",
        "events",
        True,
        ("ev",),
        has_status=False,
        extra_fields=_event_fields,
        api_versions=("events.k8s.io/v1",),
    ),
    Kind(
        "ReplicaSet",
        workloads_pb2.ReplicaSet,
        "replica_set",
        "apps/v1",
        "replicasets",
        True,
        ("rs",),
    ),
    Kind(
        "Deployment",
        workloads_pb2.Deployment,
        "deployment",
        "apps/v1",
        "deployments",
        True,
        ("deploy",),
    ),
    Kind(
        "StatefulSet",
        workloads_pb2.StatefulSet,
        "stateful_set",
        "apps/v1",
        "statefulsets",
        True,
        ("sts",),
    ),
    Kind(
        "DaemonSet", workloads_pb2.DaemonSet, "daemon_set", "apps/v1", "daemonsets", True, ("ds",)
    ),
    Kind("Job", workloads_pb2.Job, "job", "batch/v1", "jobs", True, ()),
    Kind("CronJob", workloads_pb2.CronJob, "cron_job", "batch/v1", "cronjobs", True, ("cj",)),
    Kind(
        "HorizontalPodAutoscaler",
        workloads_pb2.HorizontalPodAutoscaler,
        "horizontal_pod_autoscaler",
        "autoscaling/v2",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        api_versions=("autoscaling/v1",),
    ),
    Kind(
        "PersistentVolumeClaim",
        core_pb2.PersistentVolumeClaim,
        "persistent_volume_claim",
        "v1",
        "persistentvolumeclaims",
        True,
        ("pvc",),
    ),
    Kind(
        "PriorityClass",
        core_pb2.PriorityClass,
        "priority_class",
        "scheduling.k8s.io/v1",
        "priorityclasses",
        False,
        ("pc",),
        has_status=False,
    ),
    Kind(
        "Role",
        rbac_pb2.Role,
        "role",
        "rbac.authorization.k8s.io/v1",
        "roles",
        True,
        (),
        has_status=False,
    ),
    Kind(
        "ClusterRole",
        rbac_pb2.ClusterRole,
        "cluster_role",
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        False,
        (),
        has_status=False,
    ),
    Kind(
        "RoleBinding",
        rbac_pb2.RoleBinding,
        "role_binding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        True,
        (),
        has_status=False,
    ),
    Kind(
        "ClusterRoleBinding",
        rbac_pb2.ClusterRoleBinding,
        "cluster_role_binding",
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        False,
        (),
        has_status=False,
    ),
)

BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
BY_ONEOF: dict[str, Kind] = {k.oneof: k for k in KINDS}
BY_MESSAGE: dict[type[Message], Kind] = {k.message: k for k in KINDS}


def lookup(word: str) -> Kind | None:
    """Find a kind by its name, plural, singular or short name, case-insensitively."""
    w = word.lower()
    for k in KINDS:
        if w in (k.name.lower(), k.plural, k.plural.rstrip("s"), *k.short_names):
            return k
    return None


def selectable_fields(kind: Kind, msg: Message) -> dict[str, str]:
    """The field-selector values of an object (metadata.name/namespace plus kind extras)."""
    meta = msg.metadata  # type: ignore[attr-defined]
    out = {"metadata.name": meta.name, "metadata.namespace": meta.namespace}
    if kind.extra_fields is not None:
        out.update(kind.extra_fields(msg))
    return out


def wrap(msg: Message) -> api_pb2.Object:
    """Put a typed object into the Object envelope."""
    obj = api_pb2.Object()
    getattr(obj, BY_MESSAGE[type(msg)].oneof).CopyFrom(msg)
    return obj


def unwrap(obj: api_pb2.Object) -> tuple[Kind, Message]:
    """The kind and typed object inside an envelope; ValueError when it is empty."""
    which = obj.WhichOneof("kind")
    if which is None:
        raise ValueError("object is empty: set exactly one kind")
    return BY_ONEOF[which], getattr(obj, which)
