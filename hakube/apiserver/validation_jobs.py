"""Validation of the Job fields that change what a failure means: completion mode, per-index
back-off, and the pod failure policy (batch/v1 rules, with Kubernetes' limits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hakube.api.v1 import workloads_pb2

if TYPE_CHECKING:
    from hakube.apiserver.validation import Problems

ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")
MAX_RULES = 20
MAX_PATTERNS = 20
MAX_EXIT_CODES = 255
MAX_INDEXED = 100_000


def check_job_spec(spec: workloads_pb2.JobSpec, probs: Problems, path: str = "spec") -> None:
    """``path``: where the JobSpec is (``spec``, or ``spec.jobTemplate.spec`` of a CronJob)."""
    mode = spec.completion_mode
    if mode not in ("NonIndexed", "Indexed"):
        probs.add(f"{path}.completionMode", f'unsupported value "{mode}" (NonIndexed or Indexed)')
    indexed = mode == "Indexed"
    if indexed:
        if not spec.HasField("completions"):
            probs.add(f"{path}.completions", "required value when completionMode is Indexed")
        elif not 0 <= spec.completions <= MAX_INDEXED:
            probs.add(f"{path}.completions", f"must be between 0 and {MAX_INDEXED} when Indexed")
        if spec.parallelism > MAX_INDEXED:
            probs.add(f"{path}.parallelism", f"must be at most {MAX_INDEXED} when Indexed")
    if spec.HasField("backoff_limit_per_index"):
        if not indexed:
            probs.add(f"{path}.backoffLimitPerIndex", "requires completionMode Indexed")
        if spec.backoff_limit_per_index < 0:
            probs.add(f"{path}.backoffLimitPerIndex", "must be greater than or equal to 0")
    if spec.HasField("max_failed_indexes"):
        if not spec.HasField("backoff_limit_per_index"):
            probs.add(f"{path}.maxFailedIndexes", "requires backoffLimitPerIndex")
        if not 0 <= spec.max_failed_indexes <= max(spec.completions, 0):
            probs.add(f"{path}.maxFailedIndexes", f"must be between 0 and {path}.completions")
    if spec.HasField("pod_failure_policy"):
        _check_policy(spec, probs, path)


def _check_policy(spec: workloads_pb2.JobSpec, probs: Problems, top: str) -> None:
    restart = spec.template.spec.restart_policy
    if restart != "Never":
        probs.add(
            f"{top}.template.spec.restartPolicy",
            f'"{restart}": only "Never" is supported when podFailurePolicy is specified',
        )
    rules = spec.pod_failure_policy.rules
    if len(rules) > MAX_RULES:
        probs.add(f"{top}.podFailurePolicy.rules", f"must have at most {MAX_RULES} items")
    containers = {c.name for c in spec.template.spec.containers} | {
        c.name for c in spec.template.spec.init_containers
    }
    for i, rule in enumerate(rules):
        path = f"{top}.podFailurePolicy.rules[{i}]"
        if rule.action not in ACTIONS:
            probs.add(f"{path}.action", f'unsupported value "{rule.action}" ({", ".join(ACTIONS)})')
        elif rule.action == "FailIndex" and not spec.HasField("backoff_limit_per_index"):
            probs.add(f"{path}.action", f"FailIndex requires {top}.backoffLimitPerIndex")
        has_codes = rule.HasField("on_exit_codes")
        if has_codes == bool(rule.on_pod_conditions):
            probs.add(path, "exactly one of onExitCodes and onPodConditions is required")
        if has_codes:
            _check_exit_codes(rule.on_exit_codes, f"{path}.onExitCodes", containers, probs)
        if len(rule.on_pod_conditions) > MAX_PATTERNS:
            probs.add(f"{path}.onPodConditions", f"must have at most {MAX_PATTERNS} items")
        for j, pattern in enumerate(rule.on_pod_conditions):
            where = f"{path}.onPodConditions[{j}]"
            if not pattern.type:
                probs.add(f"{where}.type", "required value")
            pattern.status = pattern.status or "True"
            if pattern.status not in ("True", "False", "Unknown"):
                probs.add(f"{where}.status", f'unsupported value "{pattern.status}"')


def _check_exit_codes(
    req: workloads_pb2.PodFailurePolicyOnExitCodesRequirement,
    path: str,
    containers: set[str],
    probs: Problems,
) -> None:
    if req.operator not in ("In", "NotIn"):
        probs.add(f"{path}.operator", f'unsupported value "{req.operator}" (In or NotIn)')
    if req.HasField("container_name") and req.container_name not in containers:
        probs.add(f"{path}.containerName", f'no container named "{req.container_name}"')
    values = list(req.values)
    if not values:
        probs.add(f"{path}.values", "at least one value is required")
    elif len(values) > MAX_EXIT_CODES:
        probs.add(f"{path}.values", f"must have at most {MAX_EXIT_CODES} items")
    elif len(set(values)) != len(values):
        probs.add(f"{path}.values", "duplicate values")
    elif values != sorted(values):
        probs.add(f"{path}.values", "must be ordered")
    if req.operator == "In" and 0 in values:
        probs.add(f"{path}.values", "must not contain 0 for the In operator")
