"""The floor under any Python gRPC API on this machine: a server that does nothing.

Run: ``python -m bench.grpc_floor`` (``--help`` for knobs).

It starts a grpc.aio server process whose ObjectService.Create handler returns the request bytes
unchanged (no decoding, no store, no Raft) and drives it with exactly the client and the request
the store benchmark uses for hakube (``bench.hakube_system.HakubeTarget``), at 1 and 256 in
flight. Whatever hakube's figures are, they cannot beat these: the difference between this and
etcd is the cost of serving gRPC from Python (per-call work in grpc.aio and asyncio) on a machine
whose two cores are shared by the client and the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import grpc

from bench.hakube_system import HakubeTarget
from bench.loadgen import run_load
from bench.store_scenarios import puts
from hakube.local.cluster import free_ports


def serve(port: int) -> None:
    """The do-nothing server (runs in its own process)."""

    async def echo(raw: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        return raw

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "hakube.api.v1.ObjectService",
                    {"Create": grpc.unary_unary_rpc_method_handler(echo)},
                )
            ]
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by a process (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(port: int, server_pid: int, duration: float) -> list[str]:
    target = HakubeTarget(f"127.0.0.1:{port}")
    await target.setup()
    await run_load(puts(target, "warm/", b"v" * 128), concurrency=256, duration_s=1)
    rows = []
    for conc in (1, 256):
        cpu0, t0 = process_cpu(server_pid), time.perf_counter()
        r = await run_load(
            puts(target, f"c{conc}/", b"v" * 128), concurrency=conc, duration_s=duration
        )
        server = (process_cpu(server_pid) - cpu0) / (time.perf_counter() - t0)
        rows.append(
            f"| do-nothing gRPC server, {conc} in flight | {r.ops_per_s:,.0f} | "
            f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.client_cpu_s / r.elapsed_s:.2f} | "
            f"{server:.2f} |"
        )
    await target.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per row")
    p.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", "--serve", str(port)])
    try:
        rows = asyncio.run(measure(port, proc.pid, args.duration))
    finally:
        proc.kill()
        proc.wait()
    print("| scenario | ops/s | p50 ms | p99 ms | client cores | server cores |")
    print("|:--|--:|--:|--:|--:|--:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
