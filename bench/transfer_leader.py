"""``hakube members transfer-leader`` on a 3-master LocalCluster: how long leadership takes to
move, and the longest gap between acknowledged writes of a client writing back to back meanwhile.

    python -m bench.transfer_leader [--reps 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import grpc

from hakube.testing.api import Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.members import hakube


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    moved: list[float] = []
    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as base, LocalCluster(base, 3) as c:
        api = Api(c.endpoints())
        acks: list[float] = []
        stop = threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set():
                try:
                    api.create_configmap(f"w-{i}")
                    acks.append(time.monotonic())
                except grpc.RpcError:
                    pass
                i += 1

        t = threading.Thread(target=write, daemon=True)
        t.start()
        for _ in range(args.reps):
            old = c.leader()
            time.sleep(0.5)  # let writes flow before and after
            start = time.monotonic()
            r = hakube("members", "transfer-leader", "--server", old.api)
            assert r.returncode == 0, r.stderr
            new = c.leader()
            moved.append(time.monotonic() - start)
            assert new.name != old.name
            time.sleep(0.5)
            window = [a for a in acks if start - 0.5 <= a <= time.monotonic()]
            gaps.append(max(b - a for a, b in zip(window, window[1:], strict=False)))
        stop.set()
        t.join(30)
        api.close()
    print(f"transfer-leader, {args.reps} repetitions, 3 masters on loopback, one writer:")
    print(
        f"  leadership agreed by all masters: p50 {statistics.median(moved) * 1000:.0f} ms, "
        f"max {max(moved) * 1000:.0f} ms"
    )
    print(
        f"  longest gap between acknowledged writes: p50 {statistics.median(gaps) * 1000:.0f} "
        f"ms, max {max(gaps) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
