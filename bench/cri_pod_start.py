"""How long a pod takes to start through CRI: RunPodSandbox + CreateContainer + StartContainer.

Runs against a private real containerd (hakube.testing.containerd, image already present, host
network) and, side by side, against the simulated runtime over the same gRPC client, so the
client/transport overhead is visible apart from containerd's own work.

    python bench/cri_pod_start.py [--pods 30]

Needs root and scripts/install/containerd.sh. Prints per-phase p50/p90/max in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from hakube.cri import specs
from hakube.cri.client import CriClient
from hakube.cri.simulated import SimulatedCri, SimulatedRuntime
from hakube.testing.containerd import BUSYBOX_IMAGE, SANDBOX_IMAGE, Containerd


def measure(
    cri: CriClient,
    pods: int,
    *,
    log_dir: Callable[[str], str],
    cgroup_parent: Callable[[str], str],
    keep: bool,
) -> dict[str, list[float]]:
    """Start ``pods`` pods one after another; with ``keep`` they pile up (a filling node),
    without it each is removed before the next starts (an idle node)."""
    phases: dict[str, list[float]] = {"run": [], "create": [], "start": [], "total": []}
    sandboxes = []
    for _ in range(pods):
        uid = uuid.uuid4().hex[:12]
        sc = specs.sandbox_config(
            name=f"bench-{uid}",
            namespace="bench",
            uid=uid,
            host_network=True,
            log_directory=log_dir(uid),
            cgroup_parent=cgroup_parent(uid),
        )
        cc = specs.container_config(
            name="c",
            image=BUSYBOX_IMAGE,
            command=["sleep", "3600"],
            host_network=True,
            log_path="c/0.log",
        )
        t0 = time.perf_counter()
        sid = cri.run_pod_sandbox(sc)
        t1 = time.perf_counter()
        cid = cri.create_container(sid, cc, sc)
        t2 = time.perf_counter()
        cri.start_container(cid)
        t3 = time.perf_counter()
        sandboxes.append(sid)
        if not keep:
            cri.stop_pod_sandbox(sid)
            cri.remove_pod_sandbox(sid)
            sandboxes.pop()
        for name, dt in (
            ("run", t1 - t0),
            ("create", t2 - t1),
            ("start", t3 - t2),
            ("total", t3 - t0),
        ):
            phases[name].append(dt * 1000)
    for sid in sandboxes:
        cri.stop_pod_sandbox(sid)
        cri.remove_pod_sandbox(sid)
    return phases


def report(title: str, phases: dict[str, list[float]]) -> None:
    print(f"{title}")
    for name, xs in phases.items():
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(len(xs) * 0.9))]
        print(
            f"  {name:7s} p50 {statistics.median(xs):7.1f} ms   p90 {p90:7.1f} ms   "
            f"max {xs[-1]:7.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=30)
    args = ap.parse_args()
    results = {}
    with Containerd() as ctd:
        ctd.load_test_images()
        with ctd.client() as cri:
            kw = {"log_dir": lambda u: str(ctd.pod_log_dir(u)), "cgroup_parent": ctd.cgroup_parent}
            measure(cri, 2, keep=False, **kw)  # warm-up
            results["idle"] = measure(cri, args.pods, keep=False, **kw)
            results["filling"] = measure(cri, args.pods, keep=True, **kw)
            version = cri.version().runtime_version
    rt = SimulatedRuntime(preloaded=[SANDBOX_IMAGE, BUSYBOX_IMAGE])
    with SimulatedCri(rt) as sim, CriClient(sim.endpoint) as cri:
        simulated = measure(
            cri, args.pods, log_dir=lambda u: "", cgroup_parent=lambda u: "", keep=True
        )
    print(
        f"{args.pods} pods started one after another, one container each, host network, "
        "image present"
    )
    report(
        f"containerd {version} ({ctd.snapshotter}), idle node: each pod removed before the next",
        results["idle"],
    )
    report(
        f"containerd {version} ({ctd.snapshotter}), filling node: pods left running",
        results["filling"],
    )
    report("simulated runtime (same client, gRPC over a unix socket)", simulated)


if __name__ == "__main__":
    main()
