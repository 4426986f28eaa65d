"""CPU and memory in use, per pod and for the node, for ``hakubectl top`` and autoscaling.

Per container from CRI ``ListContainerStats`` (the runtime reads the cgroups): the working-set
memory, and CPU as a rate -- the runtime's own ``usage_nano_cores`` when it reports one, else
computed here from two readings of the cumulative ``usage_core_nano_seconds`` (the previous
call's, or a second reading 0.25 s after the first). Node figures come from the kernel
(``/proc/stat``, ``/proc/meminfo``: everything on the machine, as the kubelet's node usage), or,
on a simulated node, are the sum of its pods.

The agent also publishes each running pod's CPU usage as the ``metrics.hakube.io/cpu-usage``
annotation, the metrics source of the HorizontalPodAutoscaler controller.
"""

from __future__ import annotations

import os
import threading
import time

from hakube.agent.node import meminfo
from hakube.agent.runtime import LABEL_CONTAINER, LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE
from hakube.api import quantity
from hakube.api.agent.v1 import agent_pb2
from hakube.api.v1 import pod_pb2
from hakube.cri.client import CriClient
from hakube.cri.v1 import api_pb2 as pb

SECOND_READING = 0.25
"""Seconds between two readings when there is no earlier one to compute a rate from."""


_MIN_NODE_WINDOW_NS = 100_000_000
"""Wall time a node CPU rate must span (0.1 s): two reads a moment apart measure nothing."""

_CGROUP_USAGE = (
    ("/sys/fs/cgroup/cpu.stat", 1000),  # cgroup v2 root: "usage_usec N"
    ("/sys/fs/cgroup/cpuacct/cpuacct.usage", 1),  # cgroup v1 root: nanoseconds
    ("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", 1),
)


def _cpu_busy_ns() -> int:
    """CPU time used on the whole machine so far, in nanoseconds.

    The root cgroup counts it in nanoseconds (microseconds on cgroup v2), as cAdvisor reads it
    for a kubelet. /proc/stat is the fallback, but it counts in 10 ms jiffies sampled at the
    timer tick: a short burst between two ticks counts as nothing, so a lightly loaded node could
    read as exactly idle over a short window (it did, in a test)."""
    for path, scale in _CGROUP_USAGE:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) * scale
            continue
        return int(text) * scale
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has used, in seconds (a counter; metrics)."""
    return _cpu_busy_ns() / 1e9


def _node_reading() -> tuple[int, int]:
    """(machine CPU ns used, monotonic ns now)."""
    return _cpu_busy_ns(), time.monotonic_ns()


class UsageSampler:
    """Keeps the previous readings; thread-safe."""

    def __init__(self, cri: CriClient, node: str, *, simulated: bool) -> None:
        self.cri = cri
        self.node = node
        self.simulated = simulated
        self._lock = threading.Lock()
        self._prev: dict[str, tuple[int, int]] = {}
        self._prev_node: tuple[int, int] | None = None
        self._node_rate = 0

    def _read(self) -> list[pb.ContainerStats]:
        return self.cri.list_container_stats(labels={LABEL_NODE: self.node})

    def collect(self, namespace: str = "") -> agent_pb2.StatsResponse:
        stats = self._read()
        with self._lock:
            need_second = any(
                not s.cpu.usage_nano_cores.value and s.attributes.id not in self._prev
                for s in stats
            )
            need_second |= not self.simulated and self._prev_node is None
        if need_second:
            self._remember(stats)
            time.sleep(SECOND_READING)
            stats = self._read()
        with self._lock:
            pods: dict[tuple[str, str], agent_pb2.PodUsage] = {}
            for s in stats:
                labels = s.attributes.labels
                ns, pod = labels.get(LABEL_POD_NAMESPACE, ""), labels.get(LABEL_POD_NAME, "")
                if namespace and ns != namespace:
                    continue
                cpu = self._rate(s)
                mem = s.memory.working_set_bytes.value
                usage = pods.setdefault((ns, pod), agent_pb2.PodUsage(namespace=ns, name=pod))
                usage.containers.add(
                    name=labels.get(LABEL_CONTAINER, ""),
                    cpu_nano_cores=cpu,
                    memory_working_set_bytes=mem,
                )
                usage.cpu_nano_cores += cpu
                usage.memory_working_set_bytes += mem
            self._remember_locked(stats)
            out = agent_pb2.StatsResponse()
            out.pods.extend(pods[k] for k in sorted(pods))
            if self.simulated:
                out.node_cpu_nano_cores = sum(p.cpu_nano_cores for p in out.pods)
                out.node_memory_working_set_bytes = sum(
                    p.memory_working_set_bytes for p in out.pods
                )
            else:
                out.node_cpu_nano_cores = self._node_cpu()
                info = meminfo()
                out.node_memory_working_set_bytes = max(
                    0, info.get("MemTotal", 0) - info.get("MemAvailable", 0)
                )
            return out

    def _rate(self, s: pb.ContainerStats) -> int:
        if s.cpu.usage_nano_cores.value:
            return int(s.cpu.usage_nano_cores.value)
        prev = self._prev.get(s.attributes.id)
        now = (s.cpu.timestamp, s.cpu.usage_core_nano_seconds.value)
        if prev is None or now[0] <= prev[0]:
            return 0
        return max(0, int((now[1] - prev[1]) * 1e9 / (now[0] - prev[0])))

    def _remember(self, stats: list[pb.ContainerStats]) -> None:
        with self._lock:
            self._remember_locked(stats)

    def _remember_locked(self, stats: list[pb.ContainerStats]) -> None:
        self._prev = {
            s.attributes.id: (s.cpu.timestamp, s.cpu.usage_core_nano_seconds.value) for s in stats
        }
        if not self.simulated and self._prev_node is None:
            self._prev_node = _node_reading()

    def _node_cpu(self) -> int:
        busy, now = _node_reading()
        if self._prev_node is None:
            self._prev_node = (busy, now)
        prev = self._prev_node
        if now - prev[1] < _MIN_NODE_WINDOW_NS:
            return self._node_rate  # keep the older baseline and the last rate
        self._prev_node = (busy, now)
        self._node_rate = max(0, (busy - prev[0]) * 1_000_000_000 // (now - prev[1]))
        return self._node_rate


USAGE_ANNOTATION = "metrics.hakube.io/cpu-usage"
"""Where the HorizontalPodAutoscaler controller reads a pod's CPU usage (hakube.controllers.hpa;
a test keeps the two names equal)."""


def usage_to_publish(pod: pod_pb2.Pod, cpu_nano_cores: int) -> str | None:
    """The annotation value to write for ``pod`` now, or None to leave it: only running pods
    that request CPU (the autoscaler divides usage by requests), and only when the value moved
    by at least 5m and 10 %, so small jitter costs no API writes."""
    if pod.metadata.deletion_timestamp or pod.status.phase != "Running":
        return None
    if not any(
        c.resources.requests.get("cpu") or c.resources.limits.get("cpu")
        for c in pod.spec.containers
    ):
        return None
    millis = round(cpu_nano_cores / 1e6)
    old = pod.metadata.annotations.get(USAGE_ANNOTATION, "")
    if old:
        try:
            prev = quantity.cpu_millis(old)
        except ValueError:
            prev = -1
        if prev >= 0 and abs(millis - prev) < max(5, prev // 10):
            return None
    return f"{millis}m"
