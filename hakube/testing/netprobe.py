"""A client that writes through the VIP and watches who leads, for netns failover scenarios.

Run inside the client's network namespace (``python -m hakube.testing.netprobe run ...``), it
does two things until told to stop, printing one JSON line per observation with a
``time.monotonic()`` stamp (the monotonic clock is shared across network namespaces, so the
harness can compare stamps with its own):

- **Writes**: creates ConfigMaps ``probe-000001``, ``probe-000002``... (``--prefix``) in
  namespace ``default`` through the VIP, one at a time, each attempt with a short deadline. A
  write whose answer is lost is retried *with the same request id*, so it is applied at most
  once; it counts as acknowledged only when a master answered OK (or AlreadyExists for a
  retried id).
  ``{"ev": "write", "t": ..., "name": ..., "ok": true|false}``
- **Leadership** (when ``--masters`` names any): polls ClusterService.Status on every master's
  own address and prints a line
  whenever one's (leader, ready) answer changes. ``{"ev": "status", "t": ..., "from": NAME,
  "leader": NAME, "ready": bool}`` (leader "" when it does not answer).

``verify`` lists the ConfigMaps through the VIP (or any address) and prints the names missing
from a file of acknowledged names: the "no acknowledged write is lost" check. :class:`Probe`
drives both from the harness side; it is the one writer of the netns scenarios, the failover
ones (which time it) as much as the day-2 ones (which only count what was acknowledged).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hakube.testing.netns import Host

PORT = 6443


def _emit(lock: threading.Lock, **fields: Any) -> None:
    line = json.dumps({"t": time.monotonic(), **fields})
    with lock:
        print(line, flush=True)


def _writer(
    vip: str, prefix: str, stop: threading.Event, lock: threading.Lock, interval: float
) -> None:
    import grpc

    from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
    from hakube.testing import pki as testpki

    channel = testpki.channel(f"{vip}:{PORT}")
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    n = 0
    while not stop.is_set():
        n += 1
        name = f"{prefix}-{n:06d}"
        cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": "default"}, data={"n": str(n)})
        req = api_pb2.CreateRequest(object=api_pb2.Object(config_map=cm), request_id=name)
        retried = False
        while not stop.is_set():
            sent = time.monotonic()
            try:
                stub.Create(req, timeout=0.5)
                _emit(lock, ev="write", name=name, ok=True, sent=sent)
                break
            except grpc.RpcError as exc:
                if retried and exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                    _emit(lock, ev="write", name=name, ok=True, sent=sent)
                    break
                retried = True
                _emit(lock, ev="write", name=name, ok=False, code=str(exc.code()))
                stop.wait(interval)
        stop.wait(interval)


def _watcher(
    masters: dict[str, str], stop: threading.Event, lock: threading.Lock, interval: float
) -> None:
    import grpc

    from hakube.api.v1 import api_pb2, api_pb2_grpc
    from hakube.testing import pki as testpki

    stubs = {
        n: api_pb2_grpc.ClusterServiceStub(testpki.channel(f"{ip}:{PORT}"))
        for n, ip in masters.items()
    }
    last: dict[str, tuple[str, bool] | None] = dict.fromkeys(masters)
    while not stop.is_set():
        for name, stub in stubs.items():
            try:
                r = stub.Status(api_pb2.ClusterStatusRequest(), timeout=0.3)
                seen: tuple[str, bool] = (r.leader, r.ready)
            except grpc.RpcError:
                seen = ("", False)
            if seen != last[name]:
                last[name] = seen
                _emit(lock, ev="status", **{"from": name}, leader=seen[0], ready=seen[1])
        stop.wait(interval)


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    lock = threading.Lock()
    masters = dict(part.split("=", 1) for part in args.masters.split(",") if part)
    threads = [
        threading.Thread(target=_writer, args=(args.vip, args.prefix, stop, lock, args.interval))
    ]
    if masters:
        threads.append(threading.Thread(target=_watcher, args=(masters, stop, lock, args.interval)))
    for t in threads:
        t.daemon = True
        t.start()
    _emit(lock, ev="started")
    # The harness ends the probe by closing stdin (or killing it).
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(2)
    return 0


def _verify(args: argparse.Namespace) -> int:

    from hakube.api.v1 import api_pb2, api_pb2_grpc
    from hakube.testing import pki as testpki

    wanted = set(Path(args.acked).read_text().split())
    stub = api_pb2_grpc.ObjectServiceStub(testpki.channel(f"{args.vip}:{PORT}"))
    present: set[str] = set()
    token = ""
    while True:
        req = api_pb2.ListRequest(kind="ConfigMap", namespace="default", limit=1000)
        setattr(req, "continue", token)
        resp = stub.List(req, timeout=10)
        present |= {o.config_map.metadata.name for o in resp.items}
        token = getattr(resp, "continue")
        if not token:
            break
    missing = sorted(wanted - present)
    print(json.dumps({"acked": len(wanted), "missing": missing}))
    return 0


@dataclass
class Event:
    t: float
    ev: str
    data: dict[str, Any]


class Probe:
    """Harness side: run the probe on ``client`` and read what it saw.

    ``masters`` (name -> address) are watched for leadership; none, and only writes are made.
    Several probes may run side by side with different ``prefix``es."""

    def __init__(
        self,
        client: Host,
        vip: str,
        masters: dict[str, str] | None = None,
        *,
        interval: float = 0.05,
        prefix: str = "probe",
    ) -> None:
        import subprocess

        from hakube.testing import netmasters

        self.client = client
        self.vip = vip
        self.prefix = prefix
        self.log = client.network.workdir / f"netprobe-{prefix}.jsonl"
        self._seen: list[Event] = []
        self._offset = 0
        argv = [
            sys.executable,
            "-m",
            "hakube.testing.netprobe",
            "run",
            "--vip",
            vip,
            "--masters",
            ",".join(f"{n}={ip}" for n, ip in (masters or {}).items()),
            "--prefix",
            prefix,
            "--interval",
            str(interval),
        ]
        self._out = open(self.log, "wb")  # noqa: SIM115 - the child's stdout
        self.proc = subprocess.Popen(
            client.argv(argv),
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=subprocess.DEVNULL,
            env=netmasters.env(),
        )

    def events(self) -> list[Event]:
        """Everything seen so far; the log is read on from where the last call stopped."""
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for next time
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            self._seen.append(Event(d.pop("t"), d.pop("ev"), d))
        return self._seen

    def acked(self) -> list[str]:
        return [e.data["name"] for e in self.events() if e.ev == "write" and e.data["ok"]]

    def first_write_after(self, t: float) -> float | None:
        """Stamp of the first acknowledged write whose request was sent after ``t``."""
        for e in self.events():
            if e.ev == "write" and e.data["ok"] and e.data["sent"] > t:
                return e.t
        return None

    def longest_pause(self, since: float = 0.0) -> float:
        """The longest time between two acknowledged writes (answered after ``since``)."""
        stamps = [e.t for e in self.events() if e.ev == "write" and e.data["ok"] and e.t > since]
        return max((b - a for a, b in zip(stamps, stamps[1:], strict=False)), default=0.0)

    def leader_elected_after(self, t: float, among: list[str]) -> float | None:
        """Stamp when a master of ``among`` first reported a leader of ``among`` after ``t``."""
        for e in self.events():
            if (
                e.ev == "status"
                and e.t > t
                and e.data["from"] in among
                and e.data["leader"] in among
            ):
                return e.t
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()

    def finish(self) -> list[str]:
        """Stop after the write in progress; returns every acknowledged name."""
        self.stop()
        return self.acked()

    def lost(self, via: str | None = None, timeout: float = 60.0) -> list[str]:
        """Acknowledged writes missing from the cluster now, listed through ``via`` (default
        the VIP); must be empty."""
        from hakube.testing import netmasters

        acked = self.client.network.workdir / f"netprobe-{self.prefix}-acked.txt"
        acked.write_text("\n".join(self.acked()))
        argv = [
            sys.executable,
            "-m",
            "hakube.testing.netprobe",
            "verify",
            "--vip",
            via or self.vip,
            "--acked",
            str(acked),
        ]
        res = self.client.run(argv, timeout=timeout, env=netmasters.env())
        missing: list[str] = json.loads(res.stdout.strip().splitlines()[-1])["missing"]
        return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="netprobe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--vip", required=True)
    run.add_argument("--masters", default="", help="NAME=IP,... to watch (none)")
    run.add_argument("--prefix", default="probe", help="ConfigMap name prefix (probe)")
    run.add_argument("--interval", type=float, default=0.05)
    verify = sub.add_parser("verify")
    verify.add_argument("--vip", required=True)
    verify.add_argument("--acked", required=True)
    args = ap.parse_args(argv)
    return _run(args) if args.cmd == "run" else _verify(args)


if __name__ == "__main__":
    sys.exit(main())
