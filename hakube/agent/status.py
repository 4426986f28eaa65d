"""A pod's status computed from the runtime's state, the way the kubelet reports it.

Pure functions of their inputs (the pod, its ``PodRecord``, what the agent remembers about
waiting reasons and probe results, and the time), so the rules are tested without any runtime:

* container state: waiting (ContainerCreating, PodInitializing, ErrImagePull, ImagePullBackOff,
  CrashLoopBackOff, CreateContainerConfigError), running, or terminated with exit code and
  reason (Completed, Error, OOMKilled); ``lastState`` is the instance before; ``restartCount``
  the CRI attempt number.
* phase: Pending until every init container succeeded and every app container has started at
  least once; Running while any runs or will be restarted; Succeeded when all ended with 0 and
  none will restart; Failed when all ended, one failed and none will restart.
* conditions: PodScheduled (kept from the scheduler), Initialized, ContainersReady, Ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hakube.agent.runtime import PodRecord
from hakube.api.conditions import since
from hakube.api.containerhandlers import is_sidecar
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as pb


def _ns(ns: int) -> str:
    return rfc3339(ns / 1e9) if ns else ""


@dataclass
class Observed:
    """What the agent knows beyond the runtime's state."""

    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """container name -> (reason, message) of why it is not (re)started now."""
    ready: Mapping[str, bool] = field(default_factory=dict)
    """container id -> readiness probe result (absent: no result yet)."""
    started: Mapping[str, bool] = field(default_factory=dict)
    """container id -> startup probe passed."""
    pod_ip: str = ""
    host_ip: str = ""
    runtime: str = "containerd"
    """Prefix of containerID (``containerd://<id>``)."""
    now: float = 0.0


def restarts_allowed(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def terminated(st: pb.ContainerStatus, runtime: str) -> pod_pb2.ContainerStateTerminated:
    return pod_pb2.ContainerStateTerminated(
        exit_code=st.exit_code,
        reason=st.reason or ("Completed" if st.exit_code == 0 else "Error"),
        message=st.message,
        started_at=_ns(st.started_at),
        finished_at=_ns(st.finished_at),
        container_id=f"{runtime}://{st.id}",
    )


def container_status(
    spec: pod_pb2.Container, rec: PodRecord, obs: Observed, *, init: bool, default_waiting: str
) -> pod_pb2.ContainerStatus:
    cur, prev = rec.latest(spec.name), rec.previous(spec.name)
    out = pod_pb2.ContainerStatus(name=spec.name, image=spec.image)
    waiting = obs.waiting.get(spec.name)
    if cur is None:
        reason, message = waiting or (default_waiting, "")
        out.state.waiting.reason, out.state.waiting.message = reason, message
        out.started = False
        return out
    out.restart_count = cur.metadata.attempt
    out.image_id = cur.image_ref
    out.container_id = f"{obs.runtime}://{cur.id}"
    if cur.state == pb.CONTAINER_RUNNING:
        out.state.running.started_at = _ns(cur.started_at)
        started = obs.started.get(cur.id, not spec.startup_probe.ByteSize())
        out.started = started
        if init and not is_sidecar(spec):
            out.ready = False
        elif spec.readiness_probe.ByteSize():
            out.ready = started and obs.ready.get(cur.id, False)
        else:
            out.ready = started
        if prev is not None and prev.state == pb.CONTAINER_EXITED:
            out.last_state.terminated.CopyFrom(terminated(prev, obs.runtime))
    elif cur.state == pb.CONTAINER_EXITED:
        out.started = False
        if waiting is not None:
            out.state.waiting.reason, out.state.waiting.message = waiting
            out.last_state.terminated.CopyFrom(terminated(cur, obs.runtime))
        else:
            out.state.terminated.CopyFrom(terminated(cur, obs.runtime))
            out.ready = init and cur.exit_code == 0
            if prev is not None and prev.state == pb.CONTAINER_EXITED:
                out.last_state.terminated.CopyFrom(terminated(prev, obs.runtime))
    else:  # created, not (yet) started; or unknown
        out.state.waiting.reason = (waiting or ("ContainerCreating", ""))[0]
        out.started = False
        if prev is not None and prev.state == pb.CONTAINER_EXITED:
            out.last_state.terminated.CopyFrom(terminated(prev, obs.runtime))
    return out


def succeeded(st: pb.ContainerStatus | None) -> bool:
    return st is not None and st.state == pb.CONTAINER_EXITED and st.exit_code == 0


def init_done(pod: pod_pb2.Pod, rec: PodRecord) -> bool:
    """Every init container has succeeded, and every sidecar has started (true for a pod
    without any). Once an app container exists the pod stays initialized: a sidecar that
    restarts later does not send the pod back to initializing."""
    if any(rec.latest(c.name) is not None for c in pod.spec.containers):
        return True
    return all(_init_complete(c, rec.latest(c.name)) for c in pod.spec.init_containers)


def _init_complete(c: pod_pb2.Container, st: pb.ContainerStatus | None) -> bool:
    if is_sidecar(c):
        return st is not None and st.state == pb.CONTAINER_RUNNING
    return succeeded(st)


def init_failed(pod: pod_pb2.Pod, rec: PodRecord) -> bool:
    """An init container failed and the policy forbids retrying it."""
    if pod.spec.restart_policy != "Never":
        return False
    return any(
        st is not None and st.state == pb.CONTAINER_EXITED and st.exit_code != 0
        for st in (rec.latest(c.name) for c in pod.spec.init_containers if not is_sidecar(c))
    )


def phase(
    pod: pod_pb2.Pod, statuses: list[pod_pb2.ContainerStatus], initialized: bool, failed_init: bool
) -> str:
    if failed_init:
        return "Failed"
    if not initialized:
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for s in statuses:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            succeeded += s.state.terminated.exit_code == 0
        elif s.last_state.HasField("terminated"):
            stopped += 1  # waiting to be restarted
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    policy = pod.spec.restart_policy
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if policy == "Never":
        return "Failed"
    return "Running"  # OnFailure: the failed ones are being restarted


def _condition(
    old: Mapping[str, pod_pb2.PodCondition],
    ctype: str,
    ok: bool,
    reason: str,
    message: str,
    now: str,
) -> pod_pb2.PodCondition:
    status = "True" if ok else "False"
    prev = old.get(ctype)
    return pod_pb2.PodCondition(
        type=ctype,
        status=status,
        reason="" if ok else reason,
        message="" if ok else message,
        last_transition_time=since(prev, status, now),
    )


def compute(pod: pod_pb2.Pod, rec: PodRecord, obs: Observed) -> pod_pb2.PodStatus:
    """The status to report for ``pod``."""
    now = rfc3339(obs.now)
    initialized = init_done(pod, rec)
    failed_init = init_failed(pod, rec)
    st = pod_pb2.PodStatus(
        host_ip=obs.host_ip,
        pod_ip=obs.pod_ip,
        qos_class=pod.status.qos_class or qos_class(pod),
        start_time=pod.status.start_time or now,
        nominated_node_name=pod.status.nominated_node_name,
    )
    if obs.pod_ip:
        st.pod_ips.add(ip=obs.pod_ip)
    for c in pod.spec.init_containers:
        st.init_container_statuses.append(
            container_status(c, rec, obs, init=True, default_waiting="PodInitializing")
        )
    for c in pod.spec.containers:
        st.container_statuses.append(
            container_status(
                c,
                rec,
                obs,
                init=False,
                default_waiting="ContainerCreating" if initialized else "PodInitializing",
            )
        )
    st.phase = phase(pod, list(st.container_statuses), initialized, failed_init)
    old = {c.type: c for c in pod.status.conditions}
    sidecars = {c.name for c in pod.spec.init_containers if is_sidecar(c)}
    unready = [s.name for s in st.init_container_statuses if s.name in sidecars and not s.ready]
    unready += [s.name for s in st.container_statuses if not s.ready]
    terminal = st.phase in ("Succeeded", "Failed")
    reason = "PodCompleted" if terminal else "ContainersNotReady"
    msg = f"containers with unready status: [{' '.join(unready)}]"
    pending_init = [
        c.name for c in pod.spec.init_containers if not _init_complete(c, rec.latest(c.name))
    ]
    st.conditions.extend(
        [
            old.get("PodScheduled")
            or pod_pb2.PodCondition(type="PodScheduled", status="True", last_transition_time=now),
            _condition(
                old,
                "Initialized",
                initialized or (terminal and not failed_init),
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
                now,
            ),
            _condition(old, "ContainersReady", not unready and not terminal, reason, msg, now),
            _condition(old, "Ready", not unready and not terminal, reason, msg, now),
        ]
    )
    known = {"PodScheduled", "Initialized", "ContainersReady", "Ready"}
    st.conditions.extend(c for c in pod.status.conditions if c.type not in known)
    return st


def qos_class(pod: pod_pb2.Pod) -> str:
    """Guaranteed when every container's requests equal its cpu and memory limits,
    BestEffort when nothing is set, Burstable otherwise."""
    cs = [*pod.spec.containers, *pod.spec.init_containers]
    if not any(c.resources.limits or c.resources.requests for c in cs):
        return "BestEffort"
    for c in cs:
        lim, req = dict(c.resources.limits), dict(c.resources.requests)
        if not {"cpu", "memory"} <= set(lim):
            return "Burstable"
        if any(req.get(k, lim[k]) != lim[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def same(a: pod_pb2.PodStatus, b: pod_pb2.PodStatus) -> bool:
    """Whether two statuses say the same thing (probe times aside)."""
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
