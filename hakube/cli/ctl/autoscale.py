"""``hakubectl autoscale KIND NAME --max N [--min N] [--cpu-percent P] [--name HPA]``.

Creates a HorizontalPodAutoscaler for a Deployment, ReplicaSet or StatefulSet, as kubectl's
command does (name defaults to the target's; CPU target defaults to 80 %).
"""

from __future__ import annotations

import argparse

from hakube.api.v1 import meta_pb2, workloads_pb2
from hakube.cli.ctl.common import SCALABLE, Ctx, UsageError, targets


def add_autoscale(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="+", metavar="KIND NAME | KIND/NAME")
    p.add_argument("--max", type=int, required=True, help="upper limit of replicas")
    p.add_argument("--min", type=int, default=None, help="lower limit of replicas (default 1)")
    p.add_argument(
        "--cpu-percent",
        type=int,
        default=80,
        help="target average CPU utilization, percent of requests (default 80)",
    )
    p.add_argument("--name", default="", help="name of the autoscaler (default: the target's)")


def run_autoscale(ctx: Ctx) -> int:
    a = ctx.args
    named = [(k, n) for k, names in targets(a.resources) for n in names]
    if len(named) != 1:
        raise UsageError("name exactly one object: KIND NAME or KIND/NAME")
    kind, name = named[0]
    if kind.name not in SCALABLE:
        raise UsageError(
            f"{kind.plural} cannot be autoscaled (only deployments, replicasets, statefulsets)"
        )
    if a.cpu_percent < 1:
        raise UsageError("--cpu-percent must be at least 1")
    client = ctx.client()
    ns = ctx.namespace
    target = client.get(kind, name, namespace=ns)  # NotFound names the target
    hpa = workloads_pb2.HorizontalPodAutoscaler(
        metadata=meta_pb2.ObjectMeta(name=a.name or name, namespace=ns),
    )
    spec = hpa.spec
    spec.scale_target_ref.kind = kind.name
    spec.scale_target_ref.name = name
    spec.scale_target_ref.api_version = kind.api_version
    spec.max_replicas = a.max
    if a.min is not None:
        spec.min_replicas = a.min
    m = spec.metrics.add(type="Resource")
    m.resource.name = "cpu"
    m.resource.target.type = "Utilization"
    m.resource.target.average_utilization = a.cpu_percent
    client.horizontalpodautoscalers.create(hpa)
    ctx.print(
        f"horizontalpodautoscaler.autoscaling/{hpa.metadata.name} autoscaled "
        f"({target.metadata.name})"
    )
    return 0


COMMANDS = {
    "autoscale": (
        "create an autoscaler for a deployment, replicaset or statefulset",
        add_autoscale,
        run_autoscale,
    ),
}
