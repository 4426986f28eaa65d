"""Pod create -> Running latency through the whole system, with real containerd.

A real 3-master cluster (LocalCluster), a private containerd (hakube.testing.containerd, image
present), and one ``hakube agent`` process. Latency of a pod = from just before the client's
Create call to the moment a watch on the pods shows it Running (so it includes the API write,
the watch to the agent, the image check, RunPodSandbox + CreateContainer + StartContainer, the
status write and the watch back to the client).

Scenarios: ``sequential`` (one pod at a time, each created when the previous runs: the SLO's
per-pod startup latency on an idle node), ``burst`` (N pods created at once on one node), then
the node is filled to ``--fill`` pods and the agent's RSS and CPU are sampled at rest.

    python -m bench.agent_pod_start [--pods 50] [--fill 100] [--workers 4]

Needs root and scripts/install/containerd.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.machine import CpuMeter, describe
from hakube.api import convert
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE, Containerd
from hakube.testing.join import agent_args
from hakube.testing.wait import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = "bench-node"


def pod(name: str) -> pod_pb2.Pod:
    return convert.from_dict(
        {  # type: ignore[return-value]
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
            },
        }
    )


class RunningWatch:
    """Records when each pod is first seen Running."""

    def __init__(self, client: Client) -> None:
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.watch = client.watch(
            "pods", namespace="default", field_selector=f"spec.nodeName={NODE}"
        )
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for ev in self.watch:
            obj = getattr(ev, "object", None)
            if obj is None or obj.status.phase != "Running":
                continue
            with self.cond:
                self.seen.setdefault(obj.metadata.name, time.perf_counter())
                self.cond.notify_all()

    def wait(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(n in self.seen for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.seen]
                    raise TimeoutError(f"{len(missing)} pods not Running: {missing[:5]}")
                self.cond.wait(left)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def line(title: str, xs: list[float]) -> str:
    ms = [x * 1000 for x in xs]
    return (
        f"| {title} | {len(ms)} | {statistics.median(ms):.0f} | {pct(ms, 0.99):.0f} | "
        f"{max(ms):.0f} |"
    )


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) * 1024
    return cpu, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--fill", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument(
        "--runtime",
        choices=["containerd", "simulated"],
        default="containerd",
        help="simulated: the same path without containerd's own work",
    )
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="hakube-bench-agent-")
    meter = CpuMeter()
    with (
        LocalCluster(os.path.join(base, "masters"), 3) as cluster,
        Containerd() as ctd,
        Client(cluster.endpoints(), timeout=30) as client,
    ):
        ctd.load_test_images()
        log = open(os.path.join(base, "agent.log"), "ab")  # noqa: SIM115
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hakube",
                "agent",
                "--node-name",
                NODE,
                "--servers",
                ",".join(cluster.endpoints()),
                *agent_args(cluster.endpoints()),
                "--cri-endpoint",
                ctd.endpoint,
                "--root-dir",
                os.path.join(base, "agent"),
                "--listen",
                "127.0.0.1:0",
                "--node-ip",
                "127.0.0.1",
                "--workers",
                str(args.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        watch = RunningWatch(client)
        try:
            wait_for(
                lambda: (
                    any(
                        c.type == "Ready" and c.status == "True"
                        for c in client.nodes.get(NODE).status.conditions
                    )
                    if client.nodes.list(field_selector=f"metadata.name={NODE}").items
                    else False
                ),
                60,
                "the agent's node Ready",
            )
            meter.start()
            seq: list[float] = []
            for i in range(args.pods):
                name = f"seq-{i}"
                t0 = time.perf_counter()
                client.pods.create(pod(name))
                watch.wait([name])
                seq.append(watch.seen[name] - t0)
            started: dict[str, float] = {}

            def create(name: str) -> None:
                started[name] = time.perf_counter()
                client.pods.create(pod(name))

            names = [f"burst-{i}" for i in range(args.pods)]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(create, names))
            watch.wait(names)
            burst = [watch.seen[n] - started[n] for n in names]
            busy = meter.stop()
            extra = [f"fill-{i}" for i in range(max(0, args.fill - 2 * args.pods))]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda n: client.pods.create(pod(n)), extra))
            watch.wait(extra)
            time.sleep(5)  # let the node settle before sampling it at rest
            cpu0, _ = proc_cpu_rss(agent.pid)
            t0 = time.monotonic()
            time.sleep(20)
            cpu1, rss = proc_cpu_rss(agent.pid)
            idle_cpu = (cpu1 - cpu0) / (time.monotonic() - t0)
            total = 2 * args.pods + len(extra)
        finally:
            watch.watch.stop()
            agent.kill()
            agent.wait(10)
            log.close()
        version = ctd.client().version().runtime_version
    m = describe()
    print(
        f"machine: {m['cpus']} cpus, {m['cpu model']}, {m['memory']}, kernel {m['kernel']}, "
        f"python {m['python']}; containerd {version} ({ctd.snapshotter}); "
        f"agent --runtime {args.runtime} --workers {args.workers}; foreign CPU during the runs "
        f"{busy.foreign:.2f} cores"
    )
    print("| scenario | pods | p50 ms | p99 ms | max ms |")
    print("|:--|--:|--:|--:|--:|")
    print(line("sequential (one at a time)", seq))
    print(line(f"burst ({args.pods} created at once)", burst))
    print(
        f"agent at rest with {total} running pods: RSS {rss / 2**20:.0f} MiB, "
        f"CPU {idle_cpu * 100:.1f} % of one core"
    )


if __name__ == "__main__":
    main()
