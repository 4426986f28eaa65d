"""The client side of a fault run: register, set and watch workloads against a cluster, run as
one process (inside the client's network namespace) whose threads share one monotonic clock.

Phases, driven by the orchestrator through files in ``--dir``:
1. set up (register objects with their initial value, a start revision for the watchers), then
   write ``ready``;
2. run the workloads until ``--seconds`` have passed, recording every operation;
3. wait for ``healed`` (the orchestrator has ended every fault and the cluster is ready), write a
   final marker object and wait until every watcher has seen it, read the set from every master;
4. write ``history.json`` and exit.

Objects are ConfigMaps in namespace ``default``: ``reg-K`` (data ``v``) for the registers, with
label ``jepsen=register`` (what the watchers watch), and ``set-V`` (label ``jepsen=set``) for set
elements. Every written value is unique, so a read names the write it saw.

An operation's outcome: ``ok``; ``fail`` when the error proves it did not take effect (refused as
invalid, a precondition conflict, already exists); ``info`` for timeouts and unreachable
clusters, where it may or may not have taken effect.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.client import Client, errors
from hakube.client.transport import RetryPolicy
from hakube.testing.jepsen.history import Op

INITIAL = "init"
NAMESPACE = "default"
DEFINITE = (
    errors.Conflict,
    errors.AlreadyExists,
    errors.Invalid,
    errors.NotFound,
    errors.Forbidden,
)


class Recorder:
    """Collects operations from many threads; times share one clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: list[Op] = []
        self.start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.start

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(
                Op(
                    op.process,
                    op.f,
                    op.key,
                    op.value,
                    op.invoke,
                    op.complete,
                    op.outcome,
                    op.result,
                    len(self.ops),
                )
            )


def _cm(name: str, value: str, label: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, NAMESPACE
    cm.metadata.labels["jepsen"] = label
    cm.data["v"] = value
    return cm


def _outcome(exc: Exception) -> str:
    return "fail" if isinstance(exc, DEFINITE) else "info"


def register_worker(
    client: Client,
    rec: Recorder,
    process: int,
    keys: int,
    stop: float,
    rng: random.Random,
    values: itertools.count[int],
    serializable: bool = False,
) -> None:
    while rec.now() < stop:
        key = f"reg-{rng.randrange(keys)}"
        f = rng.choice(("read", "read", "write", "cas"))
        t0 = rec.now()
        if f == "read":
            try:
                got = client.configmaps.get(key, namespace=NAMESPACE, serializable=serializable)
                rec.add(Op(process, "read", key, None, t0, rec.now(), "ok", got.data["v"]))
            except Exception:  # noqa: BLE001 - an unanswered read tells nothing
                pass
            continue
        value = str(next(values))
        if f == "write":
            try:
                client.update(_cm(key, value, "register"))
                rec.add(Op(process, "write", key, value, t0, rec.now(), "ok"))
            except Exception as exc:  # noqa: BLE001 - recorded with its outcome
                rec.add(Op(process, "write", key, value, t0, rec.now(), _outcome(exc)))  # type: ignore[arg-type]
            continue
        try:  # compare-and-set: read, then update pinned to the version read
            cur = client.configmaps.get(key, namespace=NAMESPACE)
        except Exception:  # noqa: BLE001
            continue
        seen = cur.data["v"]
        if rng.random() < 0.3:  # expect another value: a cas that must not apply
            rec.add(Op(process, "read", key, None, t0, rec.now(), "ok", seen))
            continue
        new = _cm(key, value, "register")
        new.metadata.resource_version = cur.metadata.resource_version
        try:
            client.update(new)
            rec.add(Op(process, "cas", key, (seen, value), t0, rec.now(), "ok"))
        except Exception as exc:  # noqa: BLE001
            outcome = _outcome(exc)
            rec.add(Op(process, "cas", key, (seen, value), t0, rec.now(), outcome))  # type: ignore[arg-type]


def set_worker(
    client: Client, rec: Recorder, process: int, stop: float, values: itertools.count[int]
) -> None:
    while rec.now() < stop:
        value = str(next(values))
        t0 = rec.now()
        try:
            client.create(_cm(f"set-{value}", value, "set"))
            rec.add(Op(process, "add", "set", value, t0, rec.now(), "ok"))
        except Exception as exc:  # noqa: BLE001
            rec.add(Op(process, "add", "set", value, t0, rec.now(), _outcome(exc)))  # type: ignore[arg-type]


class Watcher(threading.Thread):
    """Watches the registers through one master, reconnecting from its last revision."""

    def __init__(self, name: str, client: Client, start_rev: str) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.master = name
        self.client = client
        self.rev = start_rev
        self.events: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.watch: Any = None

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.watch = self.client.watch(
                    "configmaps",
                    namespace=NAMESPACE,
                    label_selector="jepsen=register",
                    resource_version=self.rev,
                )
                for ev in self.watch:
                    if ev.type == "RELIST":
                        self.events.append(
                            {
                                "revision": ev.resource_version,
                                "type": "RELIST",
                                "name": "",
                                "value": "",
                            }
                        )
                    elif ev.object is not None:
                        self.events.append(
                            {
                                "revision": ev.resource_version,
                                "type": ev.type,
                                "name": ev.object.metadata.name,
                                "value": ev.object.data.get("v", ""),
                            }
                        )
                    self.rev = str(ev.resource_version)
                    if self.stopped.is_set():
                        break
            except Exception:  # noqa: BLE001 - the stream broke beyond the client's retries
                self.stopped.wait(0.2)

    def stop(self) -> None:
        self.stopped.set()
        if self.watch is not None:
            self.watch.stop()


class Candidate:
    """A leader-election candidate that logs the terms it believes it holds: from each moment
    it checks (every 20 ms while leading) to the end of the term the elector promised."""

    def __init__(self, identity: str, client: Client, rec: Recorder) -> None:
        from hakube.leaderelection.elector import ElectionConfig, LeaderElector

        self.identity = identity
        self.rec = rec
        self.terms: list[list[float]] = []
        self.stop = threading.Event()
        self.elector = LeaderElector(
            client,
            ElectionConfig(name="jepsen-lease", identity=identity, namespace=NAMESPACE),
            self._work,
        )
        self.thread = threading.Thread(
            target=self.elector.run, args=(self.stop,), name=f"lease-{identity}", daemon=True
        )

    def _work(self, leading: threading.Event) -> None:
        while not leading.wait(0.02):
            now = time.monotonic()
            end = self.elector.term_end
            if end > now:
                start, end = now - self.rec.start, end - self.rec.start
                if self.terms and self.terms[-1][1] >= start:
                    self.terms[-1][1] = max(self.terms[-1][1], end)
                else:
                    self.terms.append([start, end])


def _wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {timeout:.0f} s")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoints", required=True, help="NAME=HOST:PORT,... of every master")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--keys", type=int, default=5)
    p.add_argument("--register-workers", type=int, default=6)
    p.add_argument("--set-workers", type=int, default=2)
    p.add_argument("--lease-candidates", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--op-timeout", type=float, default=5.0)
    p.add_argument(
        "--serializable-reads",
        action="store_true",
        help="read registers from the answering master's replica (may be stale: "
        "shows that the checker catches stale reads)",
    )
    a = p.parse_args(argv)
    masters = dict(item.split("=", 1) for item in a.endpoints.split(","))
    policy = RetryPolicy(
        timeout=a.op_timeout,
        attempt_timeout=min(2.0, a.op_timeout),
        unreachable_timeout=a.op_timeout,
    )
    every = list(masters.values())
    setup = Client(every, timeout=30.0)
    for k in range(a.keys):
        try:
            setup.create(_cm(f"reg-{k}", INITIAL, "register"))
        except errors.AlreadyExists:
            setup.update(_cm(f"reg-{k}", INITIAL, "register"))
    marker = setup.create(_cm("marker-start", "start", "marker"))
    start_rev = marker.metadata.resource_version
    watchers = [
        Watcher(name, Client([ep], timeout=30.0, watch_idle_timeout=6.0), start_rev)
        for name, ep in sorted(masters.items())
    ]
    for w in watchers:
        w.start()
    rec = Recorder()
    (a.dir / "ready").write_text("")
    stop = rec.now() + a.seconds
    values = itertools.count(1)
    threads = []
    for i in range(a.register_workers):
        c = Client(every, policy=policy)
        threads.append(
            threading.Thread(
                target=register_worker,
                args=(
                    c,
                    rec,
                    i,
                    a.keys,
                    stop,
                    random.Random(a.seed * 1000 + i),
                    values,
                    a.serializable_reads,
                ),
            )
        )
    for i in range(a.set_workers):
        c = Client(every, policy=policy)
        threads.append(threading.Thread(target=set_worker, args=(c, rec, 100 + i, stop, values)))
    candidates = [
        Candidate(f"c{i}", Client(every, policy=policy), rec) for i in range(a.lease_candidates)
    ]
    for t in threads:
        t.start()
    for cand in candidates:
        cand.thread.start()
    for t in threads:
        t.join()
    for cand in candidates:
        cand.stop.set()
    for cand in candidates:
        cand.thread.join(timeout=30)
    (a.dir / "workload-done").write_text("")
    _wait_file(a.dir / "healed", timeout=600)
    final = _final(setup, masters, watchers)
    history = {
        "ops": [asdict(o) for o in rec.ops],
        **final,
        "leases": {cand.identity: cand.terms for cand in candidates},
    }
    (a.dir / "history.json").write_text(json.dumps(history))
    return 0


def _final(setup: Client, masters: dict[str, str], watchers: list[Watcher]) -> dict[str, Any]:
    """After the heal: one last register write every watcher must see, then each master's
    view of the set."""
    try:
        end = setup.update(_cm("reg-0", "final", "register"))
    except errors.NotFound:  # the register itself was lost (power cut with --no-fsync): the
        end = setup.create(_cm("reg-0", "final", "register"))  # checkers say what else was
    end_rev = int(end.metadata.resource_version)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
        w.events and w.events[-1]["revision"] >= end_rev for w in watchers
    ):
        time.sleep(0.1)
    for w in watchers:
        w.stop()
    reads: dict[str, list[str]] = {}
    for name, ep in sorted(masters.items()):
        c = Client([ep], timeout=60.0)
        items = c.list("configmaps", namespace=NAMESPACE, label_selector="jepsen=set").items
        reads[name] = sorted(i.data["v"] for i in items)
    return {
        "final_reads": reads,
        "watches": {w.master: [e for e in w.events if e["revision"] < end_rev] for w in watchers},
        "watch_complete": {
            w.master: bool(w.events and w.events[-1]["revision"] >= end_rev) for w in watchers
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
