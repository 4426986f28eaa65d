"""``hakubectl logs``, ``exec`` and ``top``: through the masters to the agent on the node.

As ``kubectl logs`` goes through the API server: the masters' NodeProxy service authenticates
the caller like every request, finds the pod's node and dials its agent with the master's own
certificate (node agents serve nobody else; docs/security-agent.md). hakubectl therefore needs
only its usual connection to the masters: their failover and its credentials come with it.

Failover: a call moves to the next master only when the current one could not be reached at
all, so an exec is never run twice; a node whose agent does not answer is an error naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from hakube.api import quantity
from hakube.api.agent.v1 import agent_pb2
from hakube.api.v1 import nodeproxy_pb2
from hakube.cli.ctl.common import CommandError, Ctx, UsageError
from hakube.client import Client
from hakube.client.errors import HakubeError
from hakube.client.nodeproxy import through_masters
from hakube.client.transport import Stubs

T = TypeVar("T")


def _through_masters(client: Client, fn: Callable[[Stubs], T], what: str) -> T:
    try:
        return through_masters(client, fn, what)
    except HakubeError as e:
        raise CommandError(e.message) from None


def _pod_name(text: str) -> str:
    return text.split("/", 1)[1] if text.startswith(("pod/", "pods/", "po/")) else text


def add_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
    p.add_argument("-c", "--container", default="", help="container (required when several)")
    p.add_argument(
        "-f", "--follow", action="store_true", help="stream new lines until the container ends"
    )
    p.add_argument("--tail", type=int, default=-1, help="only the last N lines (-1: all)")
    p.add_argument(
        "-p",
        "--previous",
        action="store_true",
        help="the previous instance of the container (before its last restart)",
    )
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")


def run_logs(ctx: Ctx) -> int:
    a = ctx.args
    name = _pod_name(a.pod)
    req = agent_pb2.LogsRequest(
        namespace=ctx.namespace,
        pod=name,
        container=a.container,
        follow=a.follow,
        tail_lines=a.tail,
        previous=a.previous,
        timestamps=a.timestamps,
    )

    def stream(stubs: Stubs) -> int:
        call = stubs.node_proxy.Logs(req, timeout=None if a.follow else 60)
        try:
            for chunk in call:
                ctx.out.write(chunk.data.decode("utf-8", "replace"))
                ctx.out.flush()
        finally:
            call.cancel()  # e.g. ^C or a closed pipe while following: end the agent's side
        return 0

    return _through_masters(ctx.client(), stream, f"logs of pod {name}")


def add_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
    p.add_argument("-c", "--container", default="", help="container (required when several)")
    p.add_argument(
        "--exec-timeout", type=int, default=0, help="seconds the command may run (0: no limit)"
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")


def run_exec(ctx: Ctx) -> int:
    a = ctx.args
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else list(a.cmd)
    if not cmd:
        raise UsageError("give the command after --, e.g. hakubectl exec web -- ls /")
    name = _pod_name(a.pod)
    req = agent_pb2.ExecRequest(
        namespace=ctx.namespace,
        pod=name,
        container=a.container,
        command=cmd,
        timeout_seconds=a.exec_timeout,
    )
    resp: agent_pb2.ExecResponse = _through_masters(
        ctx.client(), lambda s: s.node_proxy.Exec(req), f"exec in pod {name}"
    )
    ctx.out.write(resp.stdout.decode("utf-8", "replace"))
    ctx.out.flush()
    err = ctx.err if ctx.err is not None else sys.stderr
    err.write(resp.stderr.decode("utf-8", "replace"))
    err.flush()
    return resp.exit_code


def _cpu(nano: int) -> str:
    return f"{round(nano / 1e6)}m"


def _mem(b: int) -> str:
    return f"{b // 2**20}Mi"


def _rows(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def _stats(client: Client, node: str, namespace: str) -> agent_pb2.StatsResponse:
    req = nodeproxy_pb2.NodeStatsRequest(
        node=node, request=agent_pb2.StatsRequest(namespace=namespace)
    )
    resp: agent_pb2.StatsResponse = _through_masters(
        client, lambda s: s.node_proxy.Stats(req, timeout=30), f"stats of node {node}"
    )
    return resp


def add_top(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "what", choices=["pods", "pod", "po", "nodes", "node", "no"], metavar="pods|nodes"
    )
    p.add_argument("name", nargs="?", default="", help="one pod or node")
    p.add_argument("-A", "--all-namespaces", action="store_true")


def run_top(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.client()
    if a.what in ("nodes", "node", "no"):
        nodes = [client.nodes.get(a.name)] if a.name else client.nodes.list().items
        rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]]
        for n in nodes:
            try:
                st = _stats(client, n.metadata.name, "")
            except CommandError as e:
                ctx.error(f"error: {e}")
                rows.append([n.metadata.name, "<unknown>", "<unknown>", "<unknown>", "<unknown>"])
                continue
            cpu_cap = quantity.cpu_millis(n.status.allocatable.get("cpu", "0")) * 1e6
            mem_cap = quantity.memory_bytes(n.status.allocatable.get("memory", "0"))
            rows.append(
                [
                    n.metadata.name,
                    _cpu(st.node_cpu_nano_cores),
                    f"{100 * st.node_cpu_nano_cores / cpu_cap:.0f}%" if cpu_cap else "-",
                    _mem(st.node_memory_working_set_bytes),
                    f"{100 * st.node_memory_working_set_bytes / mem_cap:.0f}%" if mem_cap else "-",
                ]
            )
        for line in _rows(rows):
            ctx.print(line)
        return 0
    ns = None if a.all_namespaces else ctx.namespace
    pods = (
        [client.pods.get(a.name, namespace=ns)] if a.name else client.pods.list(namespace=ns).items
    )
    wanted = {(p.metadata.namespace, p.metadata.name) for p in pods if p.spec.node_name}
    usage: dict[tuple[str, str], agent_pb2.PodUsage] = {}
    for node_name in sorted({p.spec.node_name for p in pods if p.spec.node_name}):
        try:
            st = _stats(client, node_name, ns or "")
        except CommandError as e:  # one node away: report it, show the others
            ctx.error(f"error: {e}")
            continue
        usage.update({(u.namespace, u.name): u for u in st.pods if (u.namespace, u.name) in wanted})
    if not usage:
        where = "any namespace" if ns is None else f"{ns} namespace"
        raise CommandError(f"no pod metrics found in {where}")
    head = (["NAMESPACE"] if ns is None else []) + ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    rows = [head] + [
        ([k[0]] if ns is None else [])
        + [k[1], _cpu(u.cpu_nano_cores), _mem(u.memory_working_set_bytes)]
        for k, u in sorted(usage.items())
    ]
    for line in _rows(rows):
        ctx.print(line)
    return 0


COMMANDS = {
    "logs": ("print the logs of a container in a pod", add_logs, run_logs),
    "exec": ("run a command in a container (non-interactive)", add_exec, run_exec),
    "top": ("CPU and memory in use by pods or nodes", add_top, run_top),
}
