"""``hakubectl logs`` and ``hakubectl exec``: talk to the agent on the pod's node.

The masters do not carry logs or exec traffic. The pod's ``spec.nodeName`` names its node; the
Node's status publishes the agent API (InternalIP address, ``daemonEndpoints.kubeletEndpoint``
port); hakubectl connects there directly (``hakube.agent.v1.NodeAgent``). See docs/agent.md.
"""

from __future__ import annotations

import argparse
import sys

import grpc

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


COMMANDS = {
    "logs": ("print the logs of a container in a pod", add_logs, run_logs),
    "exec": ("run a command in a container (non-interactive)", add_exec, run_exec),
}
