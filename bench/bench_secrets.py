"""The cost of encryption at rest: Secret create and get latency with and without it.

Run: ``python -m bench.bench_secrets`` (``--help`` for knobs). Two 3-master clusters run in the
same process tree, one after the other: "encrypted" (``--encryption-provider-config`` with one
AES-GCM key, as ``hakube up`` and Ansible set up) and "plain" (no config). Each gets the same
sequential load through one client: ``--count`` Secret creates (``--size`` bytes of data each),
then as many linearizable gets. Progress goes to stderr; the report (machine, settings, table
of p50/p99 and the encrypted/plain ratio) goes to stdout as Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from bench import machine
from hakube.api.v1 import core_pb2
from hakube.apiserver.encryption import new_config
from hakube.store.datadir import write_private
from hakube.testing.cluster import LocalCluster


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _timed(n: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_one(base: str, encrypted: bool, count: int, size: int) -> dict[str, list[float]]:
    args: list[str] = []
    if encrypted:
        conf = os.path.join(base, "encryption.yaml")
        write_private(conf, new_config().encode())
        args = ["--encryption-provider-config", conf]
    payload = os.urandom(size)
    with LocalCluster(os.path.join(base, "c"), 3, extra_args=args) as c, c.client() as client:
        for i in range(20):  # warm-up: connections, first-call costs
            client.create(core_pb2.Secret(metadata={"name": f"warm-{i}"}, data={"k": payload}))
        creates = _timed(
            count,
            lambda i: client.create(
                core_pb2.Secret(metadata={"name": f"s-{i}"}, data={"k": payload})
            ),
        )
        gets = _timed(count, lambda i: client.get(core_pb2.Secret, f"s-{i}"))
    return {"create": creates, "get": gets}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=2000, help="creates and gets per system (2000)")
    p.add_argument("--size", type=int, default=1024, help="bytes of data per Secret (1024)")
    p.add_argument("--data-root", default="", help="where the clusters keep their data")
    args = p.parse_args(argv)
    root = args.data_root or tempfile.mkdtemp(prefix="bench-secrets-")
    foreign = machine.foreign_cpu()
    results = {}
    for name, enc in (("plain", False), ("encrypted", True)):
        log(f"{name}: {args.count} creates and gets of {args.size}-byte Secrets")
        base = os.path.join(root, name)
        os.makedirs(base, exist_ok=True)
        results[name] = run_one(base, enc, args.count, args.size)
    print("# Secrets: encryption at rest on vs off\n")
    for k, v in machine.describe().items():
        print(f"- {k}: {v}")
    print(f"- foreign CPU before the run: {foreign:.2f} cores")
    print(f"- {args.count} sequential creates then gets, {args.size} bytes of data, 3 masters\n")
    print("| op | plain p50 ms | encrypted p50 ms | ratio | plain p99 ms | encrypted p99 ms |")
    print("|---|---|---|---|---|---|")
    for op in ("create", "get"):
        a, b = results["plain"][op], results["encrypted"][op]
        pa, pb = statistics.median(a), statistics.median(b)
        print(
            f"| {op} | {pa:.2f} | {pb:.2f} | {pb / pa:.2f} | {_pct(a, 0.99):.2f} | "
            f"{_pct(b, 0.99):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
