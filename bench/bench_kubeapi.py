"""What the Kubernetes REST door costs next to the gRPC door, measured with each door's own
command-line client in the same run.

Run: ``python -m bench.bench_kubeapi`` (``--help`` for knobs) on a quiet machine. One
3-master cluster of this checkout; ``--pods`` Pending pods (no scheduler: objects only) are
created first through the gRPC client. Then ``--rounds`` rounds of, alternating the order of
the doors:

* ``kubectl apply -f`` of ``--objects`` ConfigMaps (a new namespace each time, so every object
  is created) through the first master's REST API, and ``hakubectl apply -f`` of the same
  manifest through gRPC;
* ``kubectl get pods -A`` and ``hakubectl get pods -A`` (output discarded).

Each figure is the median wall time of a whole command, process start included, as a user
sees it. The target (issue 16): the REST door costs at most 2x the gRPC door. Foreign CPU
during the run is reported: a busy machine makes the comparison meaningless.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from bench import machine
from bench.machine import CpuMeter
from bench.store_scenarios import log
from hakube.api import convert
from hakube.api.v1 import core_pb2
from hakube.testing.cluster import LocalCluster

TARGET_RATIO = 2.0


def _manifest(ns: str, n: int) -> str:
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"]
    for i in range(n):
        docs.append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {ns}}}\n"
            f"data: {{index: '{i}'}}\n"
        )
    return "---\n".join(docs)


def _seed_pods(local: LocalCluster, n: int) -> None:
    """``n`` pods in 10 namespaces, created through the gRPC client with 32 in flight."""
    with local.client(timeout=60) as c:
        for i in range(10):
            c.create(core_pb2.Namespace(metadata={"name": f"load-{i}"}))

        def create(i: int) -> None:
            c.create(
                convert.from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": f"p-{i}", "namespace": f"load-{i % 10}"},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    }
                )
            )

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(create, range(n)))


def _timed(argv: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    r = subprocess.run(
        argv, input=stdin, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {r.stderr.strip()[:400]}")
    return elapsed


def run(args: argparse.Namespace) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("bench_kubeapi: kubectl is not installed (scripts/install/kubectl.sh)")
    with tempfile.TemporaryDirectory(prefix="bench-kubeapi-") as tmp:
        with LocalCluster(os.path.join(tmp, "c"), args.masters) as local:
            log(f"seeding {args.pods} pods")
            _seed_pods(local, args.pods)
            kubeconfig = local.kubeconfig()
            env = dict(os.environ, HAKUBE_CONFIG=local.admin_config)
            rest_cmd = [kubectl, "--kubeconfig", kubeconfig]
            grpc_cmd = [sys.executable, "-m", "hakube.cli.ctl", "-s", ",".join(local.endpoints())]
            times: dict[tuple[str, str], list[float]] = {}
            meter = CpuMeter()
            meter.start()
            for r in range(args.rounds):
                doors = [("rest", rest_cmd), ("grpc", grpc_cmd)]
                if r % 2:
                    doors.reverse()
                for door, cmd in doors:
                    ns = f"apply-{door}-{uuid.uuid4().hex[:6]}"
                    manifest = _manifest(ns, args.objects)
                    t = _timed([*cmd, "apply", "-f", "-"], env, manifest)
                    times.setdefault((door, "apply"), []).append(t)
                    t = _timed([*cmd, "get", "pods", "-A"], env)
                    times.setdefault((door, "get"), []).append(t)
                    log(
                        f"round {r + 1} {door}: apply {times[(door, 'apply')][-1]:.2f}s, "
                        f"get {times[(door, 'get')][-1]:.2f}s"
                    )
            cpu = meter.stop()
    lines = [
        f"machine: {machine.describe()}",
        f"foreign CPU during the run: {cpu.foreign:.2f} cores",
        f"{'what':<34}{'REST (kubectl)':>16}{'gRPC (hakubectl)':>18}{'ratio':>8}",
    ]
    for what, label in (
        ("apply", f"apply -f, {args.objects} objects"),
        ("get", f"get pods -A, {args.pods} pods"),
    ):
        rest = statistics.median(times[("rest", what)])
        grpc = statistics.median(times[("grpc", what)])
        ratio = rest / grpc
        verdict = "ok" if ratio <= TARGET_RATIO else f"over {TARGET_RATIO}x"
        lines.append(f"{label:<34}{rest:>15.2f}s{grpc:>17.2f}s{ratio:>7.2f}x  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--masters", type=int, default=3)
    p.add_argument("--pods", type=int, default=10000, help="pods listed by get pods -A")
    p.add_argument("--objects", type=int, default=100, help="objects per apply -f")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
