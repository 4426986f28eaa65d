"""``hakubectl logs``, ``exec`` and ``top``: talk to the agent on the pod's node.

The masters do not carry logs or exec traffic. The pod's ``spec.nodeName`` names its node; the
Node's status publishes the agent API (InternalIP address, ``daemonEndpoints.kubeletEndpoint``
port); hakubectl connects there directly (``hakube.agent.v1.NodeAgent``). See docs/agent.md.
"""

from __future__ import annotations

import argparse
import sys

import grpc

from hakube.agent import quantity
from hakube.agent.v1 import agent_pb2, agent_pb2_grpc
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.cli.ctl import CommandError, Ctx, UsageError


def agent_address(node: core_pb2.Node) -> str:
    """HOST:PORT of a node's agent API, from its status."""
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    addrs = {a.type: a.address for a in node.status.addresses}
    host = addrs.get("InternalIP") or addrs.get("ExternalIP") or addrs.get("Hostname")
    if not port or not host:
        raise CommandError(
            f'node "{node.metadata.name}" publishes no agent address (is its agent running?)'
        )
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _channel(ctx: Ctx, name: str) -> tuple[grpc.Channel, pod_pb2.Pod]:
    client = ctx.client()
    pod = client.pods.get(name, namespace=ctx.namespace)
    if not pod.spec.node_name:
        raise CommandError(f'pod "{name}" is not scheduled to a node yet')
    node = client.nodes.get(pod.spec.node_name)
    return grpc.insecure_channel(agent_address(node)), pod


def _fail(exc: grpc.RpcError, where: str) -> CommandError:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code == grpc.StatusCode.UNAVAILABLE:
        return CommandError(f"cannot reach the agent of {where}: {details}")
    return CommandError(f"{details}")


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
    name = a.pod.split("/", 1)[1] if a.pod.startswith(("pod/", "pods/", "po/")) else a.pod
    ch, pod = _channel(ctx, name)
    req = agent_pb2.LogsRequest(
        namespace=pod.metadata.namespace,
        pod=name,
        container=a.container,
        follow=a.follow,
        tail_lines=a.tail,
        previous=a.previous,
        timestamps=a.timestamps,
    )
    with ch:
        try:
            for chunk in agent_pb2_grpc.NodeAgentStub(ch).Logs(
                req, timeout=None if a.follow else 60
            ):
                ctx.out.write(chunk.data.decode("utf-8", "replace"))
                ctx.out.flush()
        except grpc.RpcError as e:
            raise _fail(e, f"node {pod.spec.node_name}") from None
    return 0


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
    name = a.pod.split("/", 1)[1] if a.pod.startswith(("pod/", "pods/", "po/")) else a.pod
    ch, pod = _channel(ctx, name)
    req = agent_pb2.ExecRequest(
        namespace=pod.metadata.namespace,
        pod=name,
        container=a.container,
        command=cmd,
        timeout_seconds=a.exec_timeout,
    )
    with ch:
        try:
            resp = agent_pb2_grpc.NodeAgentStub(ch).Exec(req)
        except grpc.RpcError as e:
            raise _fail(e, f"node {pod.spec.node_name}") from None
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


def _stats(ctx: Ctx, node: core_pb2.Node, namespace: str) -> agent_pb2.StatsResponse:
    with grpc.insecure_channel(agent_address(node)) as ch:
        try:
            return agent_pb2_grpc.NodeAgentStub(ch).Stats(
                agent_pb2.StatsRequest(namespace=namespace), timeout=15
            )
        except grpc.RpcError as e:
            raise _fail(e, f"node {node.metadata.name}") from None


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
                st = _stats(ctx, n, "")
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
            st = _stats(ctx, client.nodes.get(node_name), ns or "")
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
