"""Long fault runs: ``python bench/jepsen.py --minutes 30 --seed 1 [--kinds kill,pause]``.

Runs the register, set and watch workloads against a cluster of masters on netns hosts while a
seeded nemesis partitions, pauses, kills and degrades them (hakube/testing/jepsen), then checks
linearizability, set durability and watch completeness and prints the report. Needs root and
nftables (and FUSE for ``--lazyfs``, which adds power cuts). The report, the history and every
log are kept under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hakube.testing.jepsen.run import RunConfig, run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--masters", type=int, default=5)
    p.add_argument("--kinds", default="", help="comma-separated fault kinds (default: all)")
    p.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the masters with --fsync (their default) or --no-fsync",
    )
    p.add_argument(
        "--lazyfs",
        action="store_true",
        help="keep each master's data on a lazy file system and add the power-cut faults",
    )
    p.add_argument(
        "--disk-mb",
        type=int,
        default=0,
        help="give m1 a tmpfs data dir of this size and add the disk-full fault",
    )
    p.add_argument(
        "--serializable-reads",
        action="store_true",
        help="reads skip the quorum barrier: expect the checker to find stale reads",
    )
    p.add_argument("--out", type=Path, default=Path("jepsen-out"))
    a = p.parse_args()
    cfg = RunConfig(
        masters=a.masters,
        seconds=a.minutes * 60,
        seed=a.seed,
        kinds=tuple(k for k in a.kinds.split(",") if k),
        master_flags=["--fsync"] if a.fsync else ["--no-fsync"],
        out=a.out / f"seed-{a.seed}",
        serializable_reads=a.serializable_reads,
        disk_mb=a.disk_mb,
        lazyfs=a.lazyfs,
    )
    try:
        result = run(cfg)
    except ValueError as exc:  # flags that do not go together: one line, exit 2
        print(f"bench/jepsen.py: {exc}", file=sys.stderr)
        return 2
    print(f"seed {a.seed}, {a.masters} masters, {a.minutes} min")
    print(result.report)
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
