"""Watch delivery benchmark: how long a committed write takes to reach its watchers.

Run: ``python -m bench.bench_watch`` (``--help`` for knobs). Progress on stderr, a Markdown report
on stdout, like ``bench.bench_store``.

Per system, on one fresh 3-member cluster (hakube masters, or etcd with --unsafe-no-fsync, the
durability hakube offers by default):

- ``watchers`` watch streams (default 100) are spread round-robin over the three members, as
  clients of a real cluster connect to any member. Watcher ``j`` watches shard ``j``: in hakube a
  ConfigMap watch with the label selector ``shard=j``, in etcd a watch on the prefix
  ``/wb/j/``. So every write is delivered to exactly one watcher, and every member filters every
  event against every watcher on it (the server-side fan-out work of 100 selective watchers,
  which is what node agents watching their own pods look like).
- One writer, talking to the leader, creates objects open-loop at ``rate`` writes/s (default
  1000) for ``duration`` seconds, shards round-robin. Each write's send and acknowledgement times
  are recorded on this process's monotonic clock.
- Each delivered event is matched to its write by name. **ack→delivery** is the delivery time
  minus the acknowledgement time, counted as 0 when the event arrived before the writer saw the
  ack: this is the lag a client that waits for its write and then expects its watchers to see it
  observes, and a tight bound on commit→delivery (the commit happens before the ack).
  **send→delivery** (delivery minus send) includes the write's own latency and is an upper bound.

The watchers run in a child process and the writer in this one (``time.perf_counter`` is the
system-wide monotonic clock, so their timestamps compare), so neither event loop delays the
other; both systems are driven by the same code, so their figures are comparable. A run reports
the writes that were never delivered (should be 0) and the write rate actually achieved (the
writer is open-loop: it falls behind only if the client or the system cannot keep up).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import multiprocessing
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench import machine
from bench.etcd_cluster import EtcdSystem
from bench.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc
from bench.hakube_system import HakubeSystem
from bench.loadgen import error_kind, percentile
from bench.target import aio_channel
from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.testing import pki as testpki


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class WatchRun:
    """What one system measured; latencies in milliseconds."""

    system: str
    writes: int = 0
    write_errors: int = 0
    elapsed_s: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    ack_to_delivery_ms: list[float] = field(default_factory=list)
    send_to_delivery_ms: list[float] = field(default_factory=list)
    undelivered: int = 0
    unanswered: int = 0
    """Writes without an answer 30 s after the last one was sent (overload)."""
    error_kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        def pct(values: list[float], p: float) -> float:
            return percentile(sorted(values), p)

        return {
            "rate": self.writes / self.elapsed_s if self.elapsed_s else 0.0,
            "ack_p50": pct(self.ack_ms, 50),
            "ack_p99": pct(self.ack_ms, 99),
            "a2d_p50": pct(self.ack_to_delivery_ms, 50),
            "a2d_p99": pct(self.ack_to_delivery_ms, 99),
            "a2d_max": max(self.ack_to_delivery_ms, default=math.nan),
            "s2d_p50": pct(self.send_to_delivery_ms, 50),
            "s2d_p99": pct(self.send_to_delivery_ms, 99),
        }


class Adapter:
    """How the benchmark writes and watches one system."""

    async def write(self, i: int, shard: int) -> None:
        raise NotImplementedError

    def watch(self, member: int, shard: int) -> AsyncIterator[list[int]]:
        """Yields lists of write indexes as events arrive; the first yield (an empty list)
        means the watch is established."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class HakubeAdapter(Adapter):
    def __init__(self, endpoints: list[str], leader: int, prefix: str) -> None:
        # The masters of hakube.testing.cluster.LocalCluster use this process's test CA.
        creds = testpki.credentials()
        self.channels = [aio_channel(ep, creds) for ep in endpoints]
        self.writer = api_pb2_grpc.ObjectServiceStub(self.channels[leader])
        self.prefix = prefix

    async def write(self, i: int, shard: int) -> None:
        req = api_pb2.CreateRequest(request_id=f"{self.prefix}-{i}")
        meta = req.object.config_map.metadata
        meta.name = f"{self.prefix}-{i:09d}"
        meta.namespace = "default"
        meta.labels["shard"] = str(shard)
        req.object.config_map.data["v"] = "x" * 64
        await self.writer.Create(req, timeout=30)

    async def watch(self, member: int, shard: int) -> AsyncIterator[list[int]]:
        stub = api_pb2_grpc.ObjectServiceStub(self.channels[member])
        # Start from the current revision so that nothing written before is replayed.
        listed = await stub.List(
            api_pb2.ListRequest(kind="ConfigMap", namespace="default", limit=1), timeout=30
        )
        call = stub.Watch(
            api_pb2.WatchRequest(
                kind="ConfigMap",
                namespace="default",
                label_selector=f"shard={shard}",
                resource_version=listed.resource_version,
            )
        )
        yield []
        cut = len(self.prefix) + 1
        async for ev in call:
            name = ev.object.config_map.metadata.name
            if ev.type == "ADDED" and name.startswith(self.prefix):
                yield [int(name[cut:])]

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


class EtcdAdapter(Adapter):
    def __init__(self, endpoints: list[str], leader: int, prefix: str) -> None:
        self.channels = [grpc.aio.insecure_channel(ep) for ep in endpoints]
        self.kv = rpc_pb2_grpc.KVStub(self.channels[leader])
        self.prefix = prefix

    def _key(self, shard: int, i: int = -1) -> bytes:
        base = f"/wb/{self.prefix}/{shard}/"
        return (base if i < 0 else f"{base}{i:09d}").encode()

    async def write(self, i: int, shard: int) -> None:
        await self.kv.Put(rpc_pb2.PutRequest(key=self._key(shard, i), value=b"x" * 64), timeout=30)

    async def watch(self, member: int, shard: int) -> AsyncIterator[list[int]]:
        stub = rpc_pb2_grpc.WatchStub(self.channels[member])
        key = self._key(shard)
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=key, range_end=key[:-1] + bytes([key[-1] + 1])
            )
        )
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[rpc_pb2.WatchRequest]:
            yield create
            await stop.wait()  # keep the sending side open: the watch lives with the stream

        call = stub.Watch(requests())
        cut = len(key)
        async for resp in call:
            if resp.created:
                yield []
            out = [int(ev.kv.key[cut:]) for ev in resp.events if ev.type == kv_pb2.Event.PUT]
            if out:
                yield out

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


@dataclass(frozen=True)
class Settings:
    watchers: int = 100
    rate: float = 1000.0
    duration_s: float = 10.0
    warmup_s: float = 2.0
    drain_s: float = 3.0
    """After the last acknowledged write, how long to wait for outstanding deliveries."""


@dataclass(frozen=True)
class Where:
    """Plain data naming a running cluster, so a child process can connect to it."""

    system: str
    endpoints: list[str]
    leader: int
    prefix: str

    def adapter(self) -> Adapter:
        cls = HakubeAdapter if self.system == "hakube" else EtcdAdapter
        return cls(self.endpoints, self.leader, self.prefix)


def _watch_process(where: Where, watchers: int, conn: Any) -> None:
    """Child process: run every watcher; say when all are established; on "stop", send back
    {write index: delivery time}. time.perf_counter is CLOCK_MONOTONIC, shared by processes."""
    delivered: dict[int, float] = {}

    async def main() -> None:
        adapter = where.adapter()
        ready = 0
        all_ready = asyncio.Event()

        async def watcher(j: int) -> None:
            nonlocal ready
            first = True
            async for idxs in adapter.watch(j % len(where.endpoints), j):
                now = time.perf_counter()
                if first:
                    first = False
                    ready += 1
                    if ready == watchers:
                        all_ready.set()
                for i in idxs:
                    delivered.setdefault(i, now)

        tasks = [asyncio.create_task(watcher(j)) for j in range(watchers)]
        await asyncio.wait_for(all_ready.wait(), 60)
        conn.send("ready")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await adapter.close()

    asyncio.run(main())
    conn.send(delivered)


async def measure(where: Where, settings: Settings) -> WatchRun:
    """Watchers in a child process (their event loop is not slowed by the writer's, nor the
    writer's by theirs), the writer here."""
    run = WatchRun(where.system)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_watch_process, args=(where, settings.watchers, child), daemon=True)
    proc.start()
    adapter = where.adapter()
    try:
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, parent.poll, 90)
        if not ok or parent.recv() != "ready":
            raise RuntimeError("watchers were not established within 90 s")
        sent: dict[int, float] = {}
        acked: dict[int, float] = {}
        inflight: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            sent[i] = t0
            try:
                await adapter.write(i, i % settings.watchers)
            except asyncio.CancelledError:
                return
            except grpc.RpcError as exc:
                run.write_errors += 1
                kind = error_kind(exc)
                run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
                return
            acked[i] = time.perf_counter()

        # Open loop: write i is due at start + i / rate, whatever happened to earlier ones.
        total = int(settings.rate * (settings.warmup_s + settings.duration_s))
        warm = int(settings.rate * settings.warmup_s)
        start = time.perf_counter()
        i = 0
        while i < total:
            now = time.perf_counter()
            due = start + i / settings.rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < total and start + i / settings.rate <= now:
                t = asyncio.create_task(one(i))
                inflight.add(t)
                t.add_done_callback(inflight.discard)
                i += 1
        if inflight:
            await asyncio.wait(inflight, timeout=30)
        measured_end = time.perf_counter()
        # Writes still unanswered 30 s after the last was sent: the system fell that far behind
        # the offered rate. They are reported as such, not as errors (closing cancels them).
        run.unanswered = len(inflight)
        for t in list(inflight):
            t.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        await asyncio.sleep(settings.drain_s)
        parent.send("stop")
        ok = await loop.run_in_executor(None, parent.poll, 60)
        delivered: dict[int, float] = parent.recv() if ok else {}
        run.elapsed_s = measured_end - (start + settings.warmup_s)
        for k in range(warm, total):
            if k not in acked:
                continue
            run.writes += 1
            run.ack_ms.append((acked[k] - sent[k]) * 1000)
            got = delivered.get(k)
            if got is None:
                run.undelivered += 1
                continue
            run.ack_to_delivery_ms.append(max(got - acked[k], 0.0) * 1000)
            run.send_to_delivery_ms.append((got - sent[k]) * 1000)
    finally:
        await adapter.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return run


@asynccontextmanager
async def cluster_for(name: str, data_root: str | None) -> AsyncIterator[Where]:
    """A fresh no-fsync cluster of the named system, described as plain data."""
    prefix = f"wb{int(time.time())}"
    if name == "hakube":
        async with HakubeSystem().cluster(fsync=False) as hc:
            leader = await hc.leader()
            names = list(hc.members)
            yield Where(name, [hc.target(m).endpoint for m in names], names.index(leader), prefix)
    else:
        async with EtcdSystem(data_root=data_root).cluster(fsync=False) as ec:
            leader = await ec.leader()
            names = list(ec.members)
            yield Where(name, [ec.target(m).endpoint for m in names], names.index(leader), prefix)


def report(runs: list[WatchRun], settings: Settings, started: str) -> str:
    facts = {"date": f"{started} to {_utc_now()}"}
    facts.update(machine.describe())
    facts["settings"] = (
        f"{settings.watchers} watchers (one shard each, spread over 3 "
        f"members), {settings.rate:g} writes/s open-loop to the leader for "
        f"{settings.duration_s:g} s after {settings.warmup_s:g} s warm-up"
    )
    lines = [f"- {k}: {v}" for k, v in facts.items()]
    lines.append("")
    lines.append(
        "| system | writes/s | write p50 ms | write p99 ms | ack→delivery p50 ms | "
        "ack→delivery p99 ms | ack→delivery max ms | send→delivery p50 ms | "
        "send→delivery p99 ms | undelivered | unanswered | write errors |"
    )
    lines.append("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in runs:
        s = r.summary()
        lines.append(
            f"| {r.system} | {s['rate']:,.0f} | {s['ack_p50']:.2f} | {s['ack_p99']:.2f} | "
            f"{s['a2d_p50']:.2f} | {s['a2d_p99']:.2f} | {s['a2d_max']:.2f} | "
            f"{s['s2d_p50']:.2f} | {s['s2d_p99']:.2f} | {r.undelivered} | {r.unanswered} | "
            f"{r.write_errors} |"
        )
    return "\n".join(lines)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


async def main_async(args: argparse.Namespace) -> str:
    settings = Settings(
        watchers=args.watchers, rate=args.rate, duration_s=args.duration, warmup_s=args.warmup
    )
    started = _utc_now()
    runs = []
    for name in args.systems.split(","):
        log(f"{name}: starting a 3-member cluster")
        async with cluster_for(name, args.data_root) as where:
            run = await measure(where, settings)
        s = run.summary()
        log(
            f"{name}: {s['rate']:,.0f} writes/s, ack→delivery p50 {s['a2d_p50']:.2f} ms "
            f"p99 {s['a2d_p99']:.2f} ms, undelivered {run.undelivered}, unanswered "
            f"{run.unanswered}, "
            f"write errors {run.write_errors} {run.error_kinds or ''}"
        )
        runs.append(run)
    return report(runs, settings, started)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_watch",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--systems", default="hakube,etcd", help="comma-separated: hakube, etcd")
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="writes per second")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--data-root", default=None, help="where etcd keeps its data")
    args = p.parse_args(argv)
    print(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
