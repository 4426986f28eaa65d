"""A small closed-loop load driver for asyncio clients.

Why closed-loop: the store targets are "N requests in flight from one client" (1 for sequential
latency, 256 for throughput), which is what a worker pool that starts the next request as soon as
one finishes measures. Every run is bounded: it stops after ``count`` operations, after
``duration_s`` seconds, or after ``max_errors`` failures, whichever comes first, and a single
operation can never hold it longer than ``op_timeout_s``. So the wall time of a run is at most
``duration_s + op_timeout_s`` (or ``count`` operations), even against a dead server.

Accounting rules (tested in tests/bench/test_loadgen.py):

- every index ``0 <= i < started`` is passed to ``op`` exactly once, in increasing order of start;
- an operation that returns counts as done and its latency is recorded; one that raises (or
  overruns ``op_timeout_s``) counts as an error, by exception type and gRPC status code, and its
  latency is not recorded, so percentiles describe successful requests only;
- throughput is successful operations per second of wall time;
- percentiles use the nearest-rank method, so p50 and p99 are always latencies that were
  actually observed (no interpolation).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Op = Callable[[int], Awaitable[None]]
"""One operation; called with its index (0, 1, 2, ...) so it can derive a distinct key."""

Clock = Callable[[], float]
"""Monotonic seconds; swappable so tests can drive latencies without timing anything."""


@dataclass(frozen=True)
class LoadResult:
    """What one run measured. Latencies are in milliseconds, NaN when nothing succeeded."""

    ops: int
    """Operations that completed without raising."""
    errors: int
    """Operations that raised or overran ``op_timeout_s``."""
    elapsed_s: float
    """Wall time from the first start to the last completion, in seconds."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    error_kinds: dict[str, int] = field(default_factory=dict)
    """Errors counted by exception type name, to tell timeouts from refusals at a glance."""
    client_cpu_s: float = 0.0
    """CPU seconds this process used during the run (all threads, so gRPC's too). Close to
    ``elapsed_s`` means the client, not the system under test, set the pace."""

    @property
    def ops_per_s(self) -> float:
        """Successful operations per second of wall time (0 when nothing ran)."""
        return self.ops / self.elapsed_s if self.elapsed_s > 0 else 0.0


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN for an empty sequence."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile p={p} must be in (0, 100]")
    if not sorted_values:
        return math.nan
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def error_kind(e: BaseException) -> str:
    """The exception's type name, plus its status code when it has one (gRPC errors do)."""
    try:
        name = e.code().name  # type: ignore[attr-defined]
    except Exception:  # no code(), or not a status code: the type name is all we have
        name = None
    return f"{type(e).__name__}({name})" if isinstance(name, str) else type(e).__name__


async def run_load(
    op: Op,
    *,
    concurrency: int,
    count: int | None = None,
    duration_s: float | None = None,
    op_timeout_s: float = 10.0,
    max_errors: int | None = None,
    clock: Clock = time.perf_counter,
) -> LoadResult:
    """Run ``op`` with ``concurrency`` operations in flight until a bound is reached.

    At least one of ``count`` and ``duration_s`` is required, so that no run is unbounded.
    ``max_errors`` stops a run early against a system that is down, instead of spinning through
    failures until the duration runs out.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be at least 1")
    if count is None and duration_s is None:
        raise ValueError("give count, duration_s or both: a load run must be bounded")
    if count is not None and count < 0:
        raise ValueError(f"count={count} must not be negative")

    latencies: list[float] = []
    error_kinds: Counter[str] = Counter()
    next_index = 0
    cpu_start = time.process_time()
    start = clock()
    deadline = start + duration_s if duration_s is not None else math.inf
    end = start

    def may_start() -> bool:
        if count is not None and next_index >= count:
            return False
        if max_errors is not None and error_kinds.total() >= max_errors:
            return False
        return clock() < deadline

    async def worker() -> None:
        nonlocal next_index, end
        # The event loop runs one coroutine at a time, so claiming an index needs no lock.
        while may_start():
            i = next_index
            next_index += 1
            t0 = clock()
            try:
                # asyncio.timeout, unlike wait_for, adds no task per operation.
                async with asyncio.timeout(op_timeout_s):
                    await op(i)
            except Exception as e:  # every failure is data for the report
                error_kinds[error_kind(e)] += 1
            else:
                latencies.append((clock() - t0) * 1000.0)
            end = max(end, clock())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return LoadResult(
        ops=len(latencies),
        errors=error_kinds.total(),
        elapsed_s=end - start,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        error_kinds=dict(error_kinds),
        client_cpu_s=time.process_time() - cpu_start,
    )
