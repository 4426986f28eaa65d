"""What the manifest fields cost: conversion, defaulting and validation per Pod create, before
and after the fields work, in one run.

Run: ``python -m bench.bench_validation`` on a quiet machine (``--help`` for knobs). The API
server turns a manifest into a typed object (``hakube.api.convert.from_dict``: the REST door and
hakubectl) and defaults and validates it (``hakube.apiserver.validation.default_and_validate``:
every create, whichever door it came through); those are the parts of the write path the fields
work added to (sidecars, probes and hooks, security profiles, pod-level resources, ...). This
benchmark times exactly them, for the same Pod manifests, in two trees: ``--base`` (default: the
commit before the fields work began) extracted with ``git archive`` into a temporary directory,
and this checkout. Rounds alternate base and head in separate processes; each round reports the
CPU time (not wall time) per Pod of each step, and the report keeps the median round of each.
The third figure is a whole create through the API server's object layer (``ObjectAPI.create``
with a state machine that applies each write at once): the master's own work per Pod create,
without the gRPC transport and Raft replication that the store benchmark adds on top.
Target (the issue): head costs at most 10 % more than base. Foreign CPU is reported per round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import task_busy_s

BASE = "c796f0e^"
"""The commit before the first of the manifest-fields changes (quantities as numbers)."""

ROOT = Path(__file__).resolve().parent.parent

# Pods both trees accept: what a typical Deployment's pod looks like, and a bigger one.
PODS = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                    },
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "env": [{"name": "MODE", "value": "prod"}],
                }
            ]
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "app",
            "namespace": "default",
            "labels": {"app": "app", "tier": "backend"},
            "annotations": {"team": "core"},
        },
        "spec": {
            "initContainers": [
                {"name": "migrate", "image": "app:2", "command": ["/migrate"]},
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "app:2",
                    "args": ["--port", "8080"],
                    "ports": [{"containerPort": 8080}],
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                    ],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "livenessProbe": {
                        "tcpSocket": {"port": 8080},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 10,
                    },
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                },
                {"name": "log", "image": "busybox:1.36", "command": ["tail", "-F", "/log"]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 20,
        },
    },
]

CHILD = r"""
import asyncio, concurrent.futures, json, sys, time
from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.validation import default_and_validate
from hakube.store.fsm import StoreFSM
pods, iterations = json.loads(sys.argv[1]), int(sys.argv[2])
kind = kinds.BY_NAME["Pod"]
parsed = [convert.from_dict(doc) for doc in pods]


def copies(n):
    out = []
    for i in range(n):
        for m in parsed:
            c = type(m)()
            c.CopyFrom(m)
            c.metadata.name = f"{m.metadata.name}-{i}"
            out.append(c)
    return out


for doc in pods * 50:
    default_and_validate(kind, convert.from_dict(doc))  # warm up
t0 = time.process_time()
for _ in range(iterations):
    for doc in pods:
        convert.from_dict(doc)
convert_us = (time.process_time() - t0) / (iterations * len(pods)) * 1e6
batch = copies(iterations)
t0 = time.process_time()
for m in batch:
    default_and_validate(kind, m)
validate_us = (time.process_time() - t0) / len(batch) * 1e6


class ApplyNow:
    # The state machine applies each write at once: the API's own work without Raft.
    def __init__(self, fsm):
        self.fsm = fsm

    def submit(self, op):
        fut = concurrent.futures.Future()
        fut.set_result(self.fsm.apply_batch([op], _doApply=True)[0])
        return fut


async def creates():
    fsm = StoreFSM()
    api = ObjectAPI(fsm, ApplyNow(fsm), clock=time.time)
    ns = convert.from_dict(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    )
    await api.create(api_pb2.CreateRequest(object=kinds.wrap(ns)))
    reqs = [api_pb2.CreateRequest(object=kinds.wrap(m)) for m in copies(iterations)]
    for r in reqs[:50]:
        await api.create(r)  # warm up
    t0 = time.process_time()
    for r in reqs[50:]:
        await api.create(r)
    return (time.process_time() - t0) / (len(reqs) - 50) * 1e6


create_us = asyncio.run(creates())
print(json.dumps([convert_us, validate_us, create_us]))
"""


class ChildMeter:
    """Foreign CPU over one measurement: every task's CPU time (/proc/stat) less this process's
    and its finished children's (``RUSAGE_CHILDREN``: the measuring child has exited by the
    time it is read, so a meter of live processes would count it as foreign)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = task_busy_s()
        self.ours0 = self._ours()

    @staticmethod
    def _ours() -> float:
        me, kids = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def foreign(self) -> float:
        wall = max(time.monotonic() - self.t0, 1e-9)
        busy = task_busy_s() - self.busy0
        return max(busy - (self._ours() - self.ours0), 0.0) / wall


def extract(rev: str, into: Path) -> Path:
    """The ``hakube`` package of ``rev`` (generated stubs included: they are committed)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "hakube"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(tree: Path, iterations: int) -> tuple[float, ...]:
    """(conversion, defaulting + validation, API create) CPU µs per Pod in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(PODS), str(iterations)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    ).stdout
    return tuple(float(x) for x in json.loads(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=BASE, help=f"the tree to compare with (default {BASE})")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=3000, help="creates per Pod per round")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="hakube-bench-validation-"))
    try:
        base = extract(args.base, tmp)
        results: dict[str, list[tuple[float, ...]]] = {"base": [], "head": []}
        for r in range(args.rounds):
            order = [("base", base), ("head", ROOT)]
            if r % 2:
                order.reverse()
            for name, tree in order:
                meter = ChildMeter()
                conv, val, create = measure(tree, args.iterations)
                foreign = meter.foreign()
                results[name].append((conv, val, create))
                print(
                    f"round {r + 1} {name}: convert {conv:.1f}, default+validate {val:.1f}, "
                    f"API create {create:.1f} µs/pod (foreign CPU {foreign:.2f} cores)"
                )
        print(f"\nmedians (CPU µs per Pod), base = {args.base}:")
        for i, what in enumerate(
            (
                "manifest -> object (REST door, hakubectl)",
                "default+validate (every create)",
                "API create without Raft (incl. admission)",
            )
        ):
            b = statistics.median(x[i] for x in results["base"])
            h = statistics.median(x[i] for x in results["head"])
            print(f"  {what}: base {b:.1f}  head {h:.1f}  head/base {h / b:.2f}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
