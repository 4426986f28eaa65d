"""The pod reconciler: make the runtime match each pod bound to this node, then report it.

``PodSyncer.sync(uid)`` is level-triggered and idempotent: it reads the pod (informer cache)
and what the runtime holds for it (``RuntimeView``), does the next steps, and writes the status
when it changed. It is called from a few worker threads through ``WorkQueue`` (never twice
concurrently for one pod) whenever the pod changes, the runtime relist notices a container
change, a probe result flips, a back-off expires, or the periodic resync comes round. Anything
that fails is retried by the next call; nothing here sleeps.

The steps, in the kubelet's order:

1. Pod gone from the API (force-deleted) or orphaned container: stop and remove everything.
2. ``deletionTimestamp`` set: stop containers with the grace period (SIGTERM, SIGKILL after
   ``deletionGracePeriodSeconds``, through StopContainer's timeout), remove the sandbox, delete
   the pod object for good (grace 0, uid precondition).
3. Terminal phase (Succeeded/Failed): make sure nothing runs; keep the exited containers for
   ``logs``.
4. No ready sandbox: run one (host network, or the pod's own when the runtime has CNI).
5. Volumes; then init containers one at a time in order; once all succeeded, the app
   containers: pull (imagePullPolicy), create, start; restart exited ones per restartPolicy
   with back-off; kill those whose liveness or startup probe failed.
6. Compute the status (``hakube.agent.status``) and write it if it differs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from hakube.agent import confinement, hooks, hosts, status, volumes
from hakube.agent import env as envmod
from hakube.agent.backoff import BackOff
from hakube.agent.config import AgentSettings
from hakube.agent.dns import dns_config
from hakube.agent.gate import StopGate
from hakube.agent.podcgroup import CgroupError, PodCgroups, limits_of
from hakube.agent.probes import ProbeManager
from hakube.agent.runtime import (
    ANNOTATION_GRACE,
    LABEL_CONTAINER,
    LABEL_KIND,
    PodRecord,
    RuntimeView,
    grace_seconds,
    sandbox_config,
)
from hakube.agent.satokens import PodTokens
from hakube.api import podpaths, quantity
from hakube.api.containerhandlers import is_sidecar
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, Conflict, HakubeError, NotFound
from hakube.client.events import EventRecorder
from hakube.client.tokens import create_token
from hakube.cri import specs
from hakube.cri.errors import CriError, ImagePullFailed
from hakube.cri.errors import NotFound as CriNotFound
from hakube.cri.v1 import api_pb2 as pb

log = logging.getLogger("hakube.agent.worker")

REASON_INVALID = "InvalidPodSpec"
"""Status reason and Event reason of a pod the agent refuses to run (``PodSyncer._reject``)."""


class Waiting(Exception):
    """A container cannot be started now; ``reason`` goes into its waiting state."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _PodMemory:
    """What the agent remembers about one pod between reconciles (lost on restart)."""

    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    backoff_reported: set[str] = field(default_factory=set)
    seen_at: float = field(default_factory=time.monotonic)
    """When this agent first reconciled the pod (the start of its start latency)."""
    start_reported: bool = False


class PodSyncer:
    def __init__(
        self,
        *,
        settings: AgentSettings,
        client: Client,
        view: RuntimeView,
        recorder: EventRecorder,
        probes: ProbeManager,
        host_ip: str,
        runtime_name: str,
        pod_network: Callable[[], bool],
        pod_lookup: Callable[[str], pod_pb2.Pod | None],
        node_capacity: tuple[int, int] = (0, 0),
        on_started: Callable[[float], None] | None = None,
        cgroups: PodCgroups | None = None,
    ) -> None:
        """``on_started(seconds)``: a pod this agent started has turned Running (metrics).
        ``cgroups``: the pods' own cgroups (None: the runtime's default placement)."""
        self.s = settings
        self.cgroups = cgroups
        self.on_started = on_started
        self.client = client
        self.view = view
        self.cri = view.cri
        self.events = recorder
        self.probes = probes
        self.host_ip = host_ip
        self.runtime_name = runtime_name
        self.pod_network = pod_network
        self.pod_lookup = pod_lookup
        self.node_capacity = node_capacity
        self.tokens = PodTokens(lambda ns, name, tr: create_token(client.transport, ns, name, tr))
        """The ServiceAccount tokens of the pods' projected volumes, refreshed at 80 %."""
        self.backoff = BackOff(
            settings.backoff_base, settings.backoff_max, reset=settings.backoff_reset
        )
        self._memory: dict[str, _PodMemory] = {}
        self._lock = threading.Lock()
        self._stopper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stop")
        self._hooks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hook")
        self.volume_gate = StopGate()
        """Pods' volumes are prepared (tmpfs mounted) inside it; closed when the agent stops."""

    def close(self) -> None:
        self._stopper.shutdown(wait=False, cancel_futures=True)
        self._hooks.shutdown(wait=False, cancel_futures=True)

    def waiting_reasons(self) -> list[str]:
        """The reason of every container now waiting, across this node's pods (metrics)."""
        with self._lock:
            memories = list(self._memory.values())
        return [reason for m in memories for reason, _ in list(m.waiting.values())]

    def _mem(self, uid: str) -> _PodMemory:
        with self._lock:
            return self._memory.setdefault(uid, _PodMemory())

    # -- entry point ----------------------------------------------------------------------------

    def sync(self, uid: str) -> float | None:
        """Reconcile one pod; returns seconds after which it wants another look (or None)."""
        pod = self.pod_lookup(uid)
        rec = self.view.pod(uid)
        if pod is None:
            if rec.sandboxes or rec.containers:
                self._teardown(rec, None)
            self._forget(uid)
            return None
        if pod.metadata.deletion_timestamp:
            self._teardown(rec, pod)
            self._finalize(pod)
            self._forget(uid)
            return None
        if pod.status.phase in ("Succeeded", "Failed"):
            self._quiesce(pod, rec)
            return None
        bad = podpaths.node_problems(pod)
        if bad:
            self._reject(pod, rec, bad)
            return None
        return self._run(pod, rec)

    def _reject(self, pod: pod_pb2.Pod, rec: PodRecord, bad: list[tuple[str, str]]) -> None:
        """Refuse a pod the API should have refused (paths, modes or names that would lead
        outside its directories on the node): nothing of it is prepared or run; it fails with
        the field in its status and in a warning Event."""
        message = "; ".join(f"{p}: {m}" for p, m in bad[:3])
        log.warning("refusing pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, message)
        self._teardown(rec, pod)
        self.events.emit(
            pod, REASON_INVALID, f"Pod spec refused by the node: {message}", warning=True
        )
        out = pod_pb2.Pod()
        out.CopyFrom(pod)
        out.status.phase = "Failed"
        out.status.reason = REASON_INVALID
        out.status.message = f"Pod spec refused by the node: {message}"
        try:
            self.client.pods.update_status(out)
        except (Conflict, NotFound):
            pass  # the next sync sees the newer pod and decides again

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._memory.pop(uid, None)
        self.probes.retain(uid, set())
        self.tokens.forget(uid)
        self.backoff.forget(uid + "/")
        volumes.remove(self.s.root_dir, uid)
        if self.cgroups is not None:
            self.cgroups.remove(uid)  # a busy one is left for the sweep at the next start

    # -- running --------------------------------------------------------------------------------

    def _run(self, pod: pod_pb2.Pod, rec: PodRecord) -> float | None:
        uid = pod.metadata.uid
        mem = self._mem(uid)
        mem.waiting.clear()
        wake: list[float] = []
        sandbox = rec.ready_sandbox()
        if sandbox is None and self._finished(pod, rec):
            self._write_status(pod, rec, "", mem)
            return None
        if sandbox is None:
            try:
                self._run_sandbox(pod, rec)
            except (CriError, CgroupError) as e:
                self.events.emit(
                    pod,
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {e}",
                    warning=True,
                )
                self._write_status(pod, rec, "", mem)
                return self.s.backoff_base
            rec = self.view.pod(uid)
            sandbox = rec.ready_sandbox()
            if sandbox is None:
                return self.s.backoff_base
        sb_status = self.cri.pod_sandbox_status(sandbox.id).status
        host_net = sb_status.linux.namespaces.options.network == pb.NODE
        pod_ip = self.host_ip if host_net else (sb_status.network.ip or self.host_ip)
        sb_cfg = sandbox_config(
            self.view,
            pod,
            attempt=sandbox.metadata.attempt,
            host_network=host_net,
            log_directory=self._log_dir(pod),
            dns=dns_config(pod, self.s),
            **self._cgroup(pod, create=False),
        )
        facts = envmod.PodFacts(
            pod_ip=pod_ip,
            host_ip=self.host_ip,
            node_cpu_millis=self.node_capacity[0],
            node_memory_bytes=self.node_capacity[1],
        )
        ctx = _StartContext(pod, sandbox.id, sb_cfg, host_net, facts)
        if not self.volume_gate.enter():
            return None  # the agent is stopping: mount nothing that nobody would unmount
        try:
            ctx.volumes = volumes.prepare(
                pod,
                self.s.root_dir,
                self._lookup,
                facts,
                secrets_on_disk=self.s.secret_volumes_on_disk,
                tokens=self._token,
            )
        except envmod.ConfigError as e:
            ctx.config_error = str(e)
        finally:
            self.volume_gate.leave()
        refresh = self.tokens.refresh_in(uid)
        if refresh is not None:
            wake.append(max(refresh, 1.0))
        ctx.etc_hosts = self._etc_hosts(pod, pod_ip, host_net)
        if not status.init_done(pod, rec):
            self._run_init(ctx, rec, mem, wake)
        else:
            self._run_sidecars(ctx, rec, mem, wake)
            for c in pod.spec.containers:
                self._run_app(ctx, c, rec, mem, wake)
        rec = self.view.pod(uid)
        self._write_status(pod, rec, pod_ip, mem)
        self._probe(pod, rec, pod_ip)
        self._collect_garbage(rec)
        return min(wake) if wake else None

    def _finished(self, pod: pod_pb2.Pod, rec: PodRecord) -> bool:
        """Every container has run and ended, and none will be restarted: no new sandbox."""
        if not rec.containers:
            return False
        if status.init_failed(pod, rec):
            return True
        for c in pod.spec.containers:
            st = rec.latest(c.name)
            if (
                st is None
                or st.state != pb.CONTAINER_EXITED
                or status.restarts_allowed(pod.spec.restart_policy, st.exit_code)
            ):
                return False
        return True

    def _run_sandbox(self, pod: pod_pb2.Pod, rec: PodRecord) -> None:
        for old in rec.sandboxes:  # a dead sandbox's containers cannot be restarted in it
            self.cri.stop_pod_sandbox(old.id)
        attempt = max((s.metadata.attempt + 1 for s in rec.sandboxes), default=0)
        host_net = pod.spec.host_network or not self.pod_network()
        cfg = sandbox_config(
            self.view,
            pod,
            attempt=attempt,
            host_network=host_net,
            log_directory=self._log_dir(pod),
            dns=dns_config(pod, self.s),
            **self._cgroup(pod, create=True),
        )
        self.cri.run_pod_sandbox(cfg)

    def _cgroup(self, pod: pod_pb2.Pod, *, create: bool) -> dict[str, Any]:
        """The sandbox's cgroup_parent and pod-level resources; ``create``: make the pod
        cgroup and write its limits first (before a new sandbox)."""
        if self.cgroups is None:
            return {}
        path = self.cgroups.ensure(pod) if create else self.cgroups.path(pod.metadata.uid)
        return {"cgroup_parent": path, "resources": limits_of(pod).cri()}

    def _log_dir(self, pod: pod_pb2.Pod) -> str:
        m = pod.metadata
        return f"{self.s.root_dir}/logs/{m.namespace}_{m.name}_{m.uid}"

    def _run_init(
        self, ctx: _StartContext, rec: PodRecord, mem: _PodMemory, wake: list[float]
    ) -> None:
        """Init containers one at a time, in order; a sidecar only has to be running for the
        next one to start, and is restarted whenever it exits."""
        for c in ctx.pod.spec.init_containers:
            st = rec.latest(c.name)
            if is_sidecar(c) and st is not None and st.state == pb.CONTAINER_RUNNING:
                st = self._keep_running(ctx, c, st)
                if st.state == pb.CONTAINER_RUNNING:
                    continue
            elif not is_sidecar(c) and status.succeeded(st):
                continue
            if st is None:
                self._start(ctx, c, 0, mem, init=True)
            elif st.state == pb.CONTAINER_CREATED:
                self._start_created(ctx.pod, c, st, mem)
            elif st.state == pb.CONTAINER_EXITED and (
                is_sidecar(c) or ctx.pod.spec.restart_policy != "Never"
            ):
                self._restart(ctx, c, st, mem, wake, init=True)
            return  # one init container at a time

    def _run_sidecars(
        self, ctx: _StartContext, rec: PodRecord, mem: _PodMemory, wake: list[float]
    ) -> None:
        """Once the pod is initialized its sidecars run beside the app containers, restarted
        whenever they exit, whatever the pod's restart policy."""
        for c in ctx.pod.spec.init_containers:
            if is_sidecar(c):
                self._run_app(ctx, c, rec, mem, wake, policy="Always", init=True)

    def _run_app(
        self,
        ctx: _StartContext,
        c: pod_pb2.Container,
        rec: PodRecord,
        mem: _PodMemory,
        wake: list[float],
        *,
        policy: str = "",
        init: bool = False,
    ) -> None:
        policy = policy or ctx.pod.spec.restart_policy
        st = rec.latest(c.name)
        if st is None:
            self._start(ctx, c, 0, mem, init=init)
            return
        if st.state == pb.CONTAINER_CREATED:
            self._start_created(ctx.pod, c, st, mem)
            return
        if st.state == pb.CONTAINER_RUNNING:
            st = self._keep_running(ctx, c, st)
        if st.state == pb.CONTAINER_EXITED and status.restarts_allowed(policy, st.exit_code):
            self._restart(ctx, c, st, mem, wake, init=init)

    def _keep_running(
        self, ctx: _StartContext, c: pod_pb2.Container, st: pb.ContainerStatus
    ) -> pb.ContainerStatus:
        """A running container whose liveness or startup probe failed is stopped; returns
        its status after that (exited), or as it was."""
        why = ""
        if self.probes.startup_failed(st.id):
            why = "failed startup probe"
        elif self.probes.liveness_failed(st.id):
            why = "failed liveness probe"
        if not why:
            return st
        self.events.emit(ctx.pod, "Killing", f"Container {c.name} {why}, will be restarted")
        self._stop_containers([st], self._probe_grace(ctx.pod, c))
        return self.cri.container_status(st.id)

    @staticmethod
    def _probe_grace(pod: pod_pb2.Pod, c: pod_pb2.Container) -> int:
        for p in (c.liveness_probe, c.startup_probe):
            if p.HasField("termination_grace_period_seconds"):
                return int(p.termination_grace_period_seconds)
        return grace_seconds(pod)

    def _restart(
        self,
        ctx: _StartContext,
        c: pod_pb2.Container,
        st: pb.ContainerStatus,
        mem: _PodMemory,
        wake: list[float],
        *,
        init: bool,
    ) -> None:
        key = f"{ctx.pod.metadata.uid}/{c.name}"
        finished_mono = time.monotonic() - max(0.0, time.time() - st.finished_at / 1e9)
        left = self.backoff.remaining(key, finished_mono)
        if left > 0:
            msg = (
                f"back-off restarting failed container {c.name} in pod "
                f"{ctx.pod.metadata.name}_{ctx.pod.metadata.namespace}"
            )
            mem.waiting[c.name] = ("CrashLoopBackOff", msg)
            if st.id not in mem.backoff_reported:
                mem.backoff_reported.add(st.id)
                self.events.emit(
                    ctx.pod, "BackOff", "Back-off restarting failed container", warning=True
                )
            wake.append(left + 0.05)
            return
        self.backoff.next(key)
        self._start(ctx, c, st.metadata.attempt + 1, mem, init=init)

    # -- starting -------------------------------------------------------------------------------

    def _start(
        self, ctx: _StartContext, c: pod_pb2.Container, attempt: int, mem: _PodMemory, *, init: bool
    ) -> None:
        pod = ctx.pod
        try:
            if ctx.config_error:
                raise Waiting("CreateContainerConfigError", ctx.config_error)
            image = self._ensure_image(pod, c)
            cfg = self._container_config(ctx, c, attempt, image, init=init)
        except Waiting as w:
            mem.waiting[c.name] = (w.reason, w.message)
            return
        except envmod.ConfigError as e:
            mem.waiting[c.name] = ("CreateContainerConfigError", str(e))
            self.events.emit(pod, "Failed", f"Error: {e}", warning=True)
            return
        try:
            cid = self.cri.create_container(ctx.sandbox_id, cfg, ctx.sandbox_config)
        except CriError as e:
            mem.waiting[c.name] = ("CreateContainerError", str(e))
            self.events.emit(pod, "Failed", f"Error: {e}", warning=True)
            return
        self.events.emit(pod, "Created", f"Created container {c.name}")
        try:
            self.cri.start_container(cid)
        except CriError as e:
            mem.waiting[c.name] = ("RunContainerError", str(e))
            self.events.emit(pod, "Failed", f"Error: {e}", warning=True)
            return
        self.events.emit(pod, "Started", f"Started container {c.name}")
        self._post_start(ctx, c, cid)

    def _post_start(self, ctx: _StartContext, c: pod_pb2.Container, cid: str) -> None:
        """Run the postStart hook; a failed one gets the container killed (and restarted per
        its policy, as any container that exited)."""
        if not (c.HasField("lifecycle") and c.lifecycle.HasField("post_start")):
            return
        pod = ctx.pod
        grace = grace_seconds(pod)
        ok, why = hooks.run_hook(
            self.cri, cid, c, c.lifecycle.post_start, ctx.facts.pod_ip, max(grace, 30)
        )
        if ok:
            return
        self.events.emit(
            pod, "FailedPostStartHook", f"PostStartHook of {c.name} failed: {why}", warning=True
        )
        self.events.emit(pod, "Killing", f"FailedPostStartHook: stopping container {c.name}")
        try:
            self._stop_containers([self.cri.container_status(cid)], grace)
        except CriError as e:
            log.warning("cannot stop %s after its postStart hook failed: %s", c.name, e)

    def _start_created(
        self, pod: pod_pb2.Pod, c: pod_pb2.Container, st: pb.ContainerStatus, mem: _PodMemory
    ) -> None:
        """A container created but never started (the agent stopped in between)."""
        try:
            self.cri.start_container(st.id)
            self.events.emit(pod, "Started", f"Started container {c.name}")
        except CriError as e:
            mem.waiting[c.name] = ("RunContainerError", str(e))

    def _ensure_image(self, pod: pod_pb2.Pod, c: pod_pb2.Container) -> str:
        image, policy = c.image, c.image_pull_policy or "IfNotPresent"
        if policy != "Always" and self.cri.image_status(image) is not None:
            return image
        if policy == "Never":
            raise Waiting(
                "ErrImageNeverPull",
                f'Container image "{image}" is not present with pull policy of Never',
            )
        key = f"{pod.metadata.uid}/pull/{c.name}"
        if self.backoff.remaining(key) > 0:
            raise Waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
        self.events.emit(pod, "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        try:
            self.cri.pull_image(image)
        except ImagePullFailed as e:
            self.backoff.next(key)
            self.events.emit(pod, "Failed", f'Failed to pull image "{image}": {e}', warning=True)
            raise Waiting("ErrImagePull", f'failed to pull image "{image}": {e}') from e
        self.events.emit(
            pod, "Pulled", f'Successfully pulled image "{image}" in {time.monotonic() - t0:.3f}s'
        )
        return image

    def _container_config(
        self, ctx: _StartContext, c: pod_pb2.Container, attempt: int, image: str, *, init: bool
    ) -> pb.ContainerConfig:
        pod = ctx.pod
        env = envmod.container_env(pod, c, self._lookup, ctx.facts)
        command, args = envmod.command_line(c, env)
        try:
            security = confinement.security_context(
                pod,
                c,
                lambda: self.cri.image_status(image),
                seccomp_default=self.s.seccomp_default,
                seccomp_root=self.s.seccomp_profile_root,
            )
        except confinement.ProfileError as e:
            raise Waiting("CreateContainerConfigError", str(e)) from e
        lim, req = dict(c.resources.limits), dict(c.resources.requests)
        resources = specs.linux_resources(
            cpu_request_millis=quantity.cpu_millis(req.get("cpu", lim.get("cpu", ""))),
            cpu_limit_millis=quantity.cpu_millis(lim.get("cpu", "")),
            memory_limit_bytes=quantity.memory_bytes(lim.get("memory", "")),
        )
        labels = dict(self.view.pod_labels(pod))
        labels[LABEL_CONTAINER] = c.name
        labels[LABEL_KIND] = "init" if init else "app"
        return specs.container_config(
            name=c.name,
            image=image,
            command=command,
            args=args,
            env=env,
            working_dir=c.working_dir,
            attempt=attempt,
            labels=labels,
            annotations={ANNOTATION_GRACE: str(grace_seconds(pod)), **pod.metadata.annotations},
            log_path=f"{c.name}/{attempt}.log",
            host_network=ctx.host_network,
            resources=resources,
            mounts=volumes.mounts(c, ctx.volumes) + hosts.mount(c, ctx.etc_hosts),
            security=security,
            share_pid=pod.spec.share_process_namespace,
        )

    def _etc_hosts(self, pod: pod_pb2.Pod, pod_ip: str, host_network: bool) -> str:
        """Write the pod's /etc/hosts; its path ("" if it cannot be written: the containers
        then get the runtime's own)."""
        node_hosts = ""
        if host_network:
            try:
                with open(hosts.ETC_HOSTS) as f:
                    node_hosts = f.read()
            except OSError:
                pass
        text = hosts.content(
            pod,
            pod_ip,
            host_network=host_network,
            domain=self.s.cluster_domain,
            node_hosts=node_hosts,
        )
        try:
            path = str(volumes.pod_dir(self.s.root_dir, pod.metadata.uid) / "etc-hosts")
            hosts.write(path, text)
        except (OSError, volumes.PathEscape) as e:
            log.warning("pod %s: /etc/hosts not written: %s", pod.metadata.name, e)
            return ""
        return path

    def _token(self, pod: pod_pb2.Pod, src: pod_pb2.ServiceAccountTokenProjection) -> bytes:
        try:
            return self.tokens.token(pod, src)
        except HakubeError as e:
            account = pod.spec.service_account_name or "default"
            raise envmod.ConfigError(f'serviceaccount "{account}" token: {e}') from e

    def _lookup(self, kind: str, ns: str, name: str) -> Any:
        try:
            if kind == "Secret":
                return self.client.get(core_pb2.Secret, name, namespace=ns)
            return self.client.get(core_pb2.ConfigMap, name, namespace=ns)
        except NotFound:
            return None

    # -- stopping -------------------------------------------------------------------------------

    def _stop_containers(self, running: list[pb.ContainerStatus], grace: int) -> None:
        """StopContainer on all of them at once (SIGTERM, SIGKILL after ``grace``)."""
        futures = [
            self._stopper.submit(self.cri.stop_container, st.id, grace_seconds=grace)
            for st in running
        ]
        for f in futures:
            try:
                f.result()
            except CriNotFound:
                pass

    def _teardown(self, rec: PodRecord, pod: pod_pb2.Pod | None) -> None:
        running = [
            st
            for st in rec.all_containers()
            if st.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)
        ]
        if pod is not None:
            for st in running:
                self.events.emit(pod, "Killing", f"Stopping container {st.metadata.name}")
            self._stop_in_order(pod, running)
        else:  # the pod is gone from the API: the grace it had when the container started
            grace = min(
                (int(st.annotations.get(ANNOTATION_GRACE, "30") or 30) for st in running), default=0
            )
            self._stop_containers(running, grace)
        for sb in rec.sandboxes:
            self.cri.stop_pod_sandbox(sb.id)
            self.cri.remove_pod_sandbox(sb.id)

    def _stop_in_order(self, pod: pod_pb2.Pod, running: list[pb.ContainerStatus]) -> None:
        """Stop a pod's containers within its grace period: the app containers (and the
        regular init container, if one runs) first, the sidecars after them; each group's
        preStop hooks run before its SIGTERM and spend the same budget."""
        deadline = time.monotonic() + grace_seconds(pod)
        sidecars = {c.name for c in pod.spec.init_containers if is_sidecar(c)}
        for group in (
            [st for st in running if st.metadata.name not in sidecars],
            [st for st in running if st.metadata.name in sidecars],
        ):
            if not group:
                continue
            self._pre_stop(pod, group, deadline)
            # whole seconds for StopContainer, rounded up: 1.99 s left is the 2 s of the grace
            # period that the preStop hooks did not use, not 1
            left = deadline - time.monotonic()
            self._stop_containers(group, max(0, math.ceil(left - 0.05)))

    def _pre_stop(
        self, pod: pod_pb2.Pod, running: list[pb.ContainerStatus], deadline: float
    ) -> None:
        by_name = {c.name: c for c in [*pod.spec.init_containers, *pod.spec.containers]}
        host = pod.status.pod_ip or self.host_ip
        runs = {}
        for st in running:
            c = by_name.get(st.metadata.name)
            if c is None or not (c.HasField("lifecycle") and c.lifecycle.HasField("pre_stop")):
                continue
            left = max(0.0, deadline - time.monotonic())
            runs[c.name] = self._hooks.submit(
                hooks.run_hook, self.cri, st.id, c, c.lifecycle.pre_stop, host, left
            )
        for name, fut in runs.items():
            try:
                ok, why = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                ok, why = False, "did not finish within the grace period"
            except CriError as e:
                ok, why = False, str(e)
            if not ok:
                self.events.emit(
                    pod, "FailedPreStopHook", f"PreStopHook of {name} failed: {why}", warning=True
                )

    def _finalize(self, pod: pod_pb2.Pod) -> None:
        """Delete the pod object for good now that nothing of it runs."""
        try:
            self.client.pods.delete(
                pod.metadata.name,
                namespace=pod.metadata.namespace,
                grace_period_seconds=0,
                uid=pod.metadata.uid,
            )
        except (NotFound, Conflict):
            pass  # already gone, or a new pod of the same name

    def _quiesce(self, pod: pod_pb2.Pod, rec: PodRecord) -> None:
        """A terminal pod: nothing may run; containers stay for their logs. What still runs
        is a sidecar whose app containers have all finished: it gets its preStop hook and
        grace period, as on deletion."""
        running = [st for st in rec.all_containers() if st.state == pb.CONTAINER_RUNNING]
        if running:
            self._stop_in_order(pod, running)
        for sb in rec.sandboxes:
            if sb.state == pb.SANDBOX_READY:
                self.cri.stop_pod_sandbox(sb.id)
        self.probes.retain(rec.uid, set())

    def _collect_garbage(self, rec: PodRecord) -> None:
        """Keep the current and the previous instance of each container."""
        for cs in rec.containers.values():
            for st in cs[2:]:
                if st.state == pb.CONTAINER_EXITED:
                    try:
                        self.cri.remove_container(st.id)
                    except CriError as e:
                        log.debug("cannot remove old container %s: %s", st.id, e)

    # -- reporting ------------------------------------------------------------------------------

    def _probe(self, pod: pod_pb2.Pod, rec: PodRecord, pod_ip: str) -> None:
        running = set()
        sidecars = [c for c in pod.spec.init_containers if is_sidecar(c)]
        for c in [*sidecars, *pod.spec.containers]:
            st = rec.latest(c.name)
            if st is not None and st.state == pb.CONTAINER_RUNNING:
                running.add(st.id)
                self.probes.ensure(
                    pod.metadata.uid, pod.metadata.name, c, st.id, st.started_at / 1e9, pod_ip
                )
        self.probes.retain(pod.metadata.uid, running)

    def _write_status(self, pod: pod_pb2.Pod, rec: PodRecord, pod_ip: str, mem: _PodMemory) -> None:
        obs = status.Observed(
            waiting=dict(mem.waiting),
            ready=self.probes.ready_results(),
            started=self.probes.started_results(),
            pod_ip=pod_ip,
            host_ip=self.host_ip,
            runtime=self.runtime_name,
            now=time.time(),
        )
        for attempt in range(3):
            new_status = status.compute(pod, rec, obs)
            if status.same(new_status, pod.status):
                return
            out = pod_pb2.Pod()
            out.CopyFrom(pod)
            out.status.CopyFrom(new_status)
            try:
                self.client.pods.update_status(out)
                self._note_started(pod, new_status, mem)
                return
            except Conflict:
                if attempt == 2:
                    raise
                pod = self.client.pods.get(pod.metadata.name, namespace=pod.metadata.namespace)
            except NotFound:
                return

    def _note_started(
        self, pod: pod_pb2.Pod, new_status: pod_pb2.PodStatus, mem: _PodMemory
    ) -> None:
        """Report the start latency once, for a pod this agent brought to Running (not one it
        adopted Running after a restart)."""
        if (
            self.on_started is not None
            and not mem.start_reported
            and new_status.phase == "Running"
            and pod.status.phase != "Running"
        ):
            mem.start_reported = True
            self.on_started(time.monotonic() - mem.seen_at)


@dataclass
class _StartContext:
    """What every container start of one reconcile shares."""

    pod: pod_pb2.Pod
    sandbox_id: str
    sandbox_config: pb.PodSandboxConfig
    host_network: bool
    facts: envmod.PodFacts
    volumes: dict[str, volumes.HostVolume] = field(default_factory=dict)
    config_error: str = ""
    etc_hosts: str = ""
    """The pod's managed /etc/hosts (hakube.agent.hosts), mounted into each container."""
