"""A client that writes through the VIP and watches who leads, for netns failover scenarios.

Run inside the client's network namespace (``python -m hakube.testing.netprobe run ...``), it
does two things until told to stop, printing one JSON line per observation with a
``time.monotonic()`` stamp (the monotonic clock is shared across network namespaces, so the
harness can compare stamps with its own):

- **Writes**: creates ConfigMaps ``probe-000001``, ``probe-000002``... in namespace ``default``
  through the VIP, one at a time, each attempt with a short deadline. A write whose answer is
  lost is retried *with the same request id*, so it is applied at most once; it counts as
  acknowledged only when a master answered OK (or AlreadyExists for a retried id).
  ``{"ev": "write", "t": ..., "name": ..., "ok": true|false}``
- **Leadership**: polls ClusterService.Status on every master's own address and prints a line
  whenever one's (leader, ready) answer changes. ``{"ev": "status", "t": ..., "from": NAME,
  "leader": NAME, "ready": bool}`` (leader "" when it does not answer).

``verify`` lists ``probe-*`` ConfigMaps through the VIP and prints those missing from a file of
acknowledged names: the "no acknowledged write is lost" check. :class:`Probe` drives both from
the harness side.
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


def _writer(vip: str, stop: threading.Event, lock: threading.Lock, interval: float) -> None:
    import grpc

    from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2

    channel = grpc.insecure_channel(f"{vip}:{PORT}")
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    n = 0
    while not stop.is_set():
        n += 1
        name = f"probe-{n:06d}"
        cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": "default"},
                                data={"n": str(n)})
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


def _watcher(masters: dict[str, str], stop: threading.Event, lock: threading.Lock,
             interval: float) -> None:
    import grpc

    from hakube.api.v1 import api_pb2, api_pb2_grpc

    stubs = {n: api_pb2_grpc.ClusterServiceStub(grpc.insecure_channel(f"{ip}:{PORT}"))
             for n, ip in masters.items()}
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
    masters = dict(part.split("=", 1) for part in args.masters.split(","))
    threads = [threading.Thread(target=_writer, args=(args.vip, stop, lock, args.interval)),
               threading.Thread(target=_watcher, args=(masters, stop, lock, args.interval))]
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
    import grpc

    from hakube.api.v1 import api_pb2, api_pb2_grpc

    wanted = set(Path(args.acked).read_text().split())
    stub = api_pb2_grpc.ObjectServiceStub(grpc.insecure_channel(f"{args.vip}:{PORT}"))
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
    """Harness side: run the probe on ``client`` and read what it saw."""

    def __init__(self, client: Host, vip: str, masters: dict[str, str], *,
                 interval: float = 0.05) -> None:
        import subprocess

        from hakube.testing import netmasters

        self.client = client
        self.vip = vip
        self.log = client.network.workdir / "netprobe.jsonl"
        argv = [sys.executable, "-m", "hakube.testing.netprobe", "run", "--vip", vip,
                "--masters", ",".join(f"{n}={ip}" for n, ip in masters.items()),
                "--interval", str(interval)]
        self._out = open(self.log, "wb")  # noqa: SIM115 - the child's stdout
        self.proc = subprocess.Popen(client.argv(argv), stdin=subprocess.PIPE,
                                     stdout=self._out, stderr=subprocess.DEVNULL,
                                     env=netmasters.env())

    def events(self) -> list[Event]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue  # a line being written
            out.append(Event(d.pop("t"), d.pop("ev"), d))
        return out

    def acked(self) -> list[str]:
        return [e.data["name"] for e in self.events() if e.ev == "write" and e.data["ok"]]

    def first_write_after(self, t: float) -> float | None:
        """Stamp of the first acknowledged write whose request was sent after ``t``."""
        for e in self.events():
            if e.ev == "write" and e.data["ok"] and e.data["sent"] > t:
                return e.t
        return None

    def leader_elected_after(self, t: float, among: list[str]) -> float | None:
        """Stamp when a master of ``among`` first reported a leader of ``among`` after ``t``."""
        for e in self.events():
            if (e.ev == "status" and e.t > t and e.data["from"] in among
                    and e.data["leader"] in among):
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

    def lost(self, timeout: float = 60.0) -> list[str]:
        """Acknowledged writes missing from the cluster now (must be empty)."""
        from hakube.testing import netmasters

        acked = self.client.network.workdir / "netprobe-acked.txt"
        acked.write_text("\n".join(self.acked()))
        argv = [sys.executable, "-m", "hakube.testing.netprobe", "verify", "--vip", self.vip,
                "--acked", str(acked)]
        res = self.client.run(argv, timeout=timeout, env=netmasters.env())
        missing: list[str] = json.loads(res.stdout.strip().splitlines()[-1])["missing"]
        return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="netprobe")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--vip", required=True)
    run.add_argument("--masters", required=True, help="NAME=IP,...")
    run.add_argument("--interval", type=float, default=0.05)
    verify = sub.add_parser("verify")
    verify.add_argument("--vip", required=True)
    verify.add_argument("--acked", required=True)
    args = ap.parse_args(argv)
    return _run(args) if args.cmd == "run" else _verify(args)


if __name__ == "__main__":
    sys.exit(main())
