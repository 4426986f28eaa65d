"""Indexed Jobs: one pod per completion index, and per-index back-off.

A Job with ``completionMode: Indexed`` is complete when every index in ``[0, completions)`` has
a pod that succeeded. Each pod carries its index in the annotation and label
``batch.kubernetes.io/job-completion-index`` and in ``$JOB_COMPLETION_INDEX``, and is named
and given the hostname ``<job>-<index>``, so the work it does is a function of its index and a
headless Service can address it. The succeeded (and, with ``backoffLimitPerIndex``, failed)
indexes are kept in the status as interval lists (``"0-2,5"``), which never shrink: a finished
pod that pod GC removes is not run again.

With ``backoffLimitPerIndex`` each index has a failure budget of its own: the replacement pod
for an index carries, in ``batch.kubernetes.io/job-index-failure-count``, how often that index
has failed before it, so the count survives the failed pods being deleted. An index over its
budget (or hit by a ``FailIndex`` rule) is *failed*: it gets no more pods, and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hakube.api.v1 import pod_pb2, workloads_pb2
from hakube.controllers.jobfailure import Verdict
from hakube.controllers.owned import pod_from_template
from hakube.controllers.podutil import failed_at, is_active

INDEX = "batch.kubernetes.io/job-completion-index"
FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
ENV = "JOB_COMPLETION_INDEX"


def format_indexes(indexes: Iterable[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2,5"``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(_run(run))
        run = [i]
    if run:
        out.append(_run(run))
    return ",".join(out)


def _run(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def parse_indexes(text: str, completions: int) -> set[int]:
    """The indexes below ``completions`` named by an interval list; malformed parts are
    skipped (the status is the controller's own writing)."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(range(max(first, 0), min(last, completions - 1) + 1))
    return out


def index_of(pod: pod_pb2.Pod, completions: int) -> int | None:
    try:
        i = int(pod.metadata.annotations.get(INDEX, ""))
    except ValueError:
        return None
    return i if 0 <= i < completions else None


def failure_count(pod: pod_pb2.Pod) -> int:
    """How often the pod's index failed before this pod was made."""
    try:
        return max(0, int(pod.metadata.annotations.get(FAILURE_COUNT, "0")))
    except ValueError:
        return 0


@dataclass
class IndexView:
    """What the pods and the status say about each index."""

    succeeded: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    active: dict[int, pod_pb2.Pod] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    last_failure: dict[int, float] = field(default_factory=dict)
    extra: list[pod_pb2.Pod] = field(default_factory=list)
    """Active pods without a valid index, or a second one for an index: to delete."""


def view(
    job: workloads_pb2.Job, pods: list[pod_pb2.Pod], verdicts: dict[str, Verdict]
) -> IndexView:
    n = job.spec.completions
    v = IndexView(
        succeeded=parse_indexes(job.status.completed_indexes, n),
        failed=parse_indexes(job.status.failed_indexes, n),
    )
    per_index = job.spec.HasField("backoff_limit_per_index")
    for p in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        i = index_of(p, n)
        if i is None:
            if is_active(p):
                v.extra.append(p)
            continue
        if p.status.phase == "Succeeded":
            v.succeeded.add(i)
        elif p.status.phase == "Failed":
            action = verdicts.get(p.metadata.uid, Verdict("Count")).action
            counted = failure_count(p) + (action != "Ignore")
            v.failures[i] = max(v.failures.get(i, 0), counted)
            v.last_failure[i] = max(v.last_failure.get(i, 0.0), failed_at(p))
            if action == "FailIndex" or (per_index and counted > job.spec.backoff_limit_per_index):
                v.failed.add(i)
        elif is_active(p):
            if i in v.active:
                v.extra.append(p)
            else:
                v.active[i] = p
        v.failures.setdefault(i, failure_count(p))
    v.failed -= v.succeeded
    return v


def new_pod(job: workloads_pb2.Job, index: int, failures: int) -> pod_pb2.Pod:
    """The pod for ``index``, whose earlier pods failed ``failures`` times."""
    name = f"{job.metadata.name}-{index}"
    pod = pod_from_template(job.spec.template, job, generate_name=f"{name}-")
    pod.metadata.annotations[INDEX] = str(index)
    pod.metadata.labels[INDEX] = str(index)
    if failures:
        pod.metadata.annotations[FAILURE_COUNT] = str(failures)
    if not pod.spec.hostname and len(name) <= 63:
        pod.spec.hostname = name
    for c in [*pod.spec.init_containers, *pod.spec.containers]:
        if not any(e.name == ENV for e in c.env):
            c.env.add(name=ENV, value=str(index))
    return pod
