"""A Job's pod failure policy: what one failed pod means for its Job.

The first rule that matches a failed pod decides (batch/v1 semantics):

* ``FailJob``: the whole Job fails at once (reason ``PodFailurePolicy``), its pods are stopped;
* ``FailIndex``: that pod's completion index fails at once, whatever its back-off left;
* ``Ignore``: the failure is not counted against any back-off limit (a pod evicted from a
  draining node, say), and the pod is replaced;
* ``Count``: counted as usual -- also what happens when no rule matches.

``onExitCodes`` matches on the exit codes of the pod's terminated containers (init containers
included; ``containerName`` narrows it to one). Containers that exited 0 are left out, so
``NotIn [1]`` means "some container failed with a code other than 1". ``onPodConditions``
matches when the pod has a condition of that type with that status.
"""

from __future__ import annotations

from dataclasses import dataclass

from hakube.api.v1 import pod_pb2, workloads_pb2

COUNT = "Count"


@dataclass(frozen=True)
class Verdict:
    action: str
    message: str = ""


def judge(job: workloads_pb2.Job, pod: pod_pb2.Pod) -> Verdict:
    """The verdict on ``pod``, a failed pod of ``job``."""
    for i, rule in enumerate(job.spec.pod_failure_policy.rules):
        why = _matches(rule, pod)
        if why is not None:
            return Verdict(
                rule.action,
                f"{why} for pod {pod.metadata.namespace}/{pod.metadata.name} "
                f"matching {rule.action} rule at index {i}",
            )
    return Verdict(COUNT)


def _matches(rule: workloads_pb2.PodFailurePolicyRule, pod: pod_pb2.Pod) -> str | None:
    if rule.HasField("on_exit_codes"):
        return _exit_code_match(rule.on_exit_codes, pod)
    for pattern in rule.on_pod_conditions:
        want = pattern.status or "True"
        for c in pod.status.conditions:
            if c.type == pattern.type and c.status == want:
                return f"Pod has condition {c.type}={c.status}"
    return None


def _exit_code_match(
    req: workloads_pb2.PodFailurePolicyOnExitCodesRequirement, pod: pod_pb2.Pod
) -> str | None:
    values = set(req.values)
    statuses = [*pod.status.init_container_statuses, *pod.status.container_statuses]
    for s in statuses:
        if req.HasField("container_name") and s.name != req.container_name:
            continue
        if not s.state.HasField("terminated"):
            continue
        code = s.state.terminated.exit_code
        if code == 0:
            continue
        if (code in values) == (req.operator == "In"):
            return f"Container {s.name} failed with exit code {code}"
    return None
