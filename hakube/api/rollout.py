"""What a Deployment rollout is made of, as both its controller and ``hakubectl rollout`` read
it: the annotations and label that name revisions, when two pod templates are the same
revision, and the reasons of the Progressing condition.

The arithmetic of a rollout (surge, proportions, scale-down plans) is the controller's own and
stays in ``hakube.controllers.deployutil``.
"""

from __future__ import annotations

from typing import Any

from hakube.api.v1 import pod_pb2

HASH_LABEL = "pod-template-hash"
"""The label that tells a ReplicaSet's pods apart from its siblings'."""
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

AVAILABLE = "Available"
PROGRESSING = "Progressing"
"""Condition types of a Deployment; the constants below are Progressing's reasons."""
TIMED_OUT = "ProgressDeadlineExceeded"
COMPLETE = "NewReplicaSetAvailable"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
CREATED = "NewReplicaSetCreated"


def without_hash(template: pod_pb2.PodTemplateSpec) -> pod_pb2.PodTemplateSpec:
    """A copy of ``template`` without the hash label: what identifies a revision."""
    t = pod_pb2.PodTemplateSpec()
    t.CopyFrom(template)
    t.metadata.labels.pop(HASH_LABEL, None)
    return t


def same_template(a: pod_pb2.PodTemplateSpec, b: pod_pb2.PodTemplateSpec) -> bool:
    """Whether two templates are one revision (the hash label aside)."""
    return without_hash(a).SerializeToString(deterministic=True) == without_hash(
        b
    ).SerializeToString(deterministic=True)


def revision(obj: Any) -> int:
    """The revision annotation of a Deployment or ReplicaSet; 0 when absent or garbled."""
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0
