"""Typed helpers: ``client.pods.get("web")`` returns a ``pod_pb2.Pod``, for every kind.

A ``Resource`` binds the generic verbs of the client to one kind, so the type checker knows what
comes back and callers need not name the kind on every call. One property per kind (named by
its plural) keeps them discoverable; ``tests/client/test_public_api.py`` checks that every kind
in the registry has one, so adding a kind cannot forget it.
"""

from __future__ import annotations

from typing import Any, Generic

from hakube.api.v1 import core_pb2, pod_pb2, rbac_pb2, workloads_pb2
from hakube.client.base import DeleteResult, M, ObjectClient, ObjectList
from hakube.client.informer import Informer
from hakube.client.watch import Watch, open_watch


class Resource(Generic[M]):
    """The client's verbs for one kind (``M`` is its message class)."""

    def __init__(self, client: ObjectClient, message: type[M]) -> None:
        self.client = client
        self.message = message

    def get(self, name: str, *, namespace: str | None = None, **kw: Any) -> M:
        out: M = self.client.get(self.message, name, namespace=namespace, **kw)
        return out

    def list(
        self,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        **kw: Any,
    ) -> ObjectList[M]:
        return self.client.list(
            self.message,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            **kw,
        )

    def create(self, obj: M, **kw: Any) -> M:
        return self.client.create(obj, **kw)

    def update(self, obj: M, **kw: Any) -> M:
        return self.client.update(obj, **kw)

    def update_status(self, obj: M, **kw: Any) -> M:
        return self.client.update_status(obj, **kw)

    def delete(self, name: str, *, namespace: str | None = None, **kw: Any) -> DeleteResult[M]:
        return self.client.delete(self.message, name, namespace=namespace, **kw)

    def watch(self, *, namespace: str | None = None, **kw: Any) -> Watch:
        return open_watch(self.client, self.message, namespace=namespace, **kw)

    def informer(self, *, namespace: str | None = None, **kw: Any) -> Informer[M]:
        return Informer(self.client, self.message, namespace=namespace, **kw)


class TypedResources:
    """Mixed into Client: one ``Resource`` property per kind."""

    def resource(self, message: type[M]) -> Resource[M]:
        """The typed helper for any kind's message class."""
        return Resource(self, message)  # type: ignore[arg-type]

    @property
    def namespaces(self) -> Resource[core_pb2.Namespace]:
        return self.resource(core_pb2.Namespace)

    @property
    def nodes(self) -> Resource[core_pb2.Node]:
        return self.resource(core_pb2.Node)

    @property
    def pods(self) -> Resource[pod_pb2.Pod]:
        return self.resource(pod_pb2.Pod)

    @property
    def services(self) -> Resource[core_pb2.Service]:
        return self.resource(core_pb2.Service)

    @property
    def endpoints(self) -> Resource[core_pb2.Endpoints]:
        return self.resource(core_pb2.Endpoints)

    @property
    def configmaps(self) -> Resource[core_pb2.ConfigMap]:
        return self.resource(core_pb2.ConfigMap)

    @property
    def secrets(self) -> Resource[core_pb2.Secret]:
        return self.resource(core_pb2.Secret)

    @property
    def serviceaccounts(self) -> Resource[core_pb2.ServiceAccount]:
        return self.resource(core_pb2.ServiceAccount)

    @property
    def leases(self) -> Resource[core_pb2.Lease]:
        return self.resource(core_pb2.Lease)

    @property
    def events(self) -> Resource[core_pb2.Event]:
        return self.resource(core_pb2.Event)

    @property
    def replicasets(self) -> Resource[workloads_pb2.ReplicaSet]:
        return self.resource(workloads_pb2.ReplicaSet)

    @property
    def deployments(self) -> Resource[workloads_pb2.Deployment]:
        return self.resource(workloads_pb2.Deployment)

    @property
    def statefulsets(self) -> Resource[workloads_pb2.StatefulSet]:
        return self.resource(workloads_pb2.StatefulSet)

    @property
    def daemonsets(self) -> Resource[workloads_pb2.DaemonSet]:
        return self.resource(workloads_pb2.DaemonSet)

    @property
    def jobs(self) -> Resource[workloads_pb2.Job]:
        return self.resource(workloads_pb2.Job)

    @property
    def cronjobs(self) -> Resource[workloads_pb2.CronJob]:
        return self.resource(workloads_pb2.CronJob)

    @property
    def horizontalpodautoscalers(self) -> Resource[workloads_pb2.HorizontalPodAutoscaler]:
        return self.resource(workloads_pb2.HorizontalPodAutoscaler)

    @property
    def persistentvolumeclaims(self) -> Resource[core_pb2.PersistentVolumeClaim]:
        return self.resource(core_pb2.PersistentVolumeClaim)

    @property
    def priorityclasses(self) -> Resource[core_pb2.PriorityClass]:
        return self.resource(core_pb2.PriorityClass)

    @property
    def roles(self) -> Resource[rbac_pb2.Role]:
        return self.resource(rbac_pb2.Role)

    @property
    def clusterroles(self) -> Resource[rbac_pb2.ClusterRole]:
        return self.resource(rbac_pb2.ClusterRole)

    @property
    def rolebindings(self) -> Resource[rbac_pb2.RoleBinding]:
        return self.resource(rbac_pb2.RoleBinding)

    @property
    def clusterrolebindings(self) -> Resource[rbac_pb2.ClusterRoleBinding]:
        return self.resource(rbac_pb2.ClusterRoleBinding)
