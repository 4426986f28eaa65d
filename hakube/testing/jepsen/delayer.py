"""Delay and reorder packets in user space: a reader of the kernel's netfilter queue (NFQUEUE).

This machine's kernel has no ``netem`` queueing discipline, so delay and reordering cannot be
asked of ``tc``. It does have the NFQUEUE target: an iptables rule hands each matching packet to
a queue, the kernel holds it, and a program reading the queue over netlink says when to let it
go (a *verdict*). This module is that program. It gives every packet a random delay in a range
and issues the verdict when the delay is over; verdicts may be given in any order, so packets
that drew a shorter delay overtake earlier ones — reordering at packet level, as netem's does.
With ``keep_order`` each packet waits at least as long as the one before it (delay, no
reordering).

The netlink protocol is spoken directly (``nfnetlink_queue``: a config message binds the queue
and asks for packet metadata only; each packet message carries an id; a verdict message names
the id and ``NF_ACCEPT``), so nothing beyond the standard library is needed. The reader runs
inside the network namespace whose queue it serves (a queue belongs to a namespace), started
as ``python -m hakube.testing.jepsen.delayer`` by :func:`start`; the iptables rule uses
``--queue-bypass``, so traffic flows undelayed rather than stops if the reader is gone.
Stopping it (SIGTERM) lets every held packet go at once.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hakube.testing.netns import Host

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
QUEUE_MAXLEN = 16384
"""Packets the kernel holds for the reader; past that they pass undelayed (fail-open)."""


def _attr(kind: int, data: bytes) -> bytes:
    pad = b"\0" * (-len(data) % 4)
    return struct.pack("=HH", 4 + len(data), kind) + data + pad


def _message(kind: int, queue: int, attrs: list[tuple[int, bytes]], flags: int, seq: int) -> bytes:
    """One nfnetlink_queue message: netlink header, nfgenmsg (family, version, queue), attrs."""
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue)
    body += b"".join(_attr(k, d) for k, d in attrs)
    return (
        struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body
    )


def verdict(queue: int, packet_id: int) -> bytes:
    """The message that lets packet ``packet_id`` of ``queue`` go on."""
    hdr = struct.pack("!II", NF_ACCEPT, packet_id)
    return _message(NFQNL_MSG_VERDICT, queue, [(NFQA_VERDICT_HDR, hdr)], NLM_F_REQUEST, 0)


def packet_ids(data: bytes) -> list[tuple[int, int]]:
    """(queue, packet id) of every packet message in one datagram read from the socket."""
    out = []
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            (queue,) = struct.unpack_from("!H", data, off + 18)
            pos, end = off + 20, off + length
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, pos)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR:
                    out.append((queue, struct.unpack_from("!I", data, pos + 4)[0]))
                pos += (alen + 3) & ~3
        off += (length + 3) & ~3
    return out


class Queue:
    """A bound netfilter queue in the current network namespace."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        cmd = struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)
        self._config([(NFQA_CFG_CMD, cmd)], 1)
        self._config(
            [
                (NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
                (NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)),
                (NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                (NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
            ],
            2,
        )

    def _config(self, attrs: list[tuple[int, bytes]], seq: int) -> None:
        """Send a config message and wait for the kernel's acknowledgement (OSError if refused:
        e.g. the queue is already bound by another reader)."""
        flags = NLM_F_REQUEST | NLM_F_ACK
        self.sock.send(_message(NFQNL_MSG_CONFIG, self.number, attrs, flags, seq))
        while True:
            data = self.sock.recv(65536)
            length, kind, _, rseq = struct.unpack_from("=IHHI", data)
            if kind == NLMSG_ERROR and rseq == seq:
                (err,) = struct.unpack_from("=i", data, 16)
                if err:
                    raise OSError(-err, f"nfqueue {self.number}: config: {os.strerror(-err)}")
                return

    def close(self) -> None:
        self.sock.close()


@dataclass
class Delays:
    """Each packet's delay: uniform in [low, high] seconds; ``keep_order``: never before the
    packet ahead of it."""

    low: float
    high: float
    keep_order: bool
    rng: random.Random
    _last: float = 0.0

    def release_at(self, now: float) -> float:
        at = now + self.rng.uniform(self.low, self.high)
        if self.keep_order:
            at = max(at, self._last)
            self._last = at
        return at


def serve(queue: Queue, delays: Delays, stop: list[bool]) -> int:
    """Hold each queued packet for its delay, then accept it; until ``stop[0]``. Returns how
    many packets were delayed. On stop every held packet is released at once."""
    held: list[tuple[float, int, int, int]] = []  # (release time, arrival order, queue, id)
    order = 0
    sock = queue.sock
    while not stop[0]:
        now = time.monotonic()
        wait = min(0.2, max(0.0, held[0][0] - now)) if held else 0.2
        try:
            ready, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if ready:
            while True:
                try:
                    data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                now = time.monotonic()
                for q, pid in packet_ids(data):
                    heapq.heappush(held, (delays.release_at(now), order, q, pid))
                    order += 1
        now = time.monotonic()
        due = []
        while held and held[0][0] <= now:
            _, _, q, pid = heapq.heappop(held)
            due.append(verdict(q, pid))
        _send(sock, due)
    _send(sock, [verdict(q, pid) for _, _, q, pid in sorted(held)])
    return order


def _send(sock: socket.socket, messages: list[bytes]) -> None:
    for i in range(0, len(messages), 256):  # several netlink messages in one datagram
        sock.send(b"".join(messages[i : i + 256]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="delay (and reorder) packets of an NFQUEUE")
    p.add_argument("--queue", type=int, default=0)
    p.add_argument("--min-ms", type=float, default=20.0)
    p.add_argument("--max-ms", type=float, default=200.0)
    p.add_argument("--keep-order", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ready", type=Path, help="file to create once the queue is bound")
    a = p.parse_args(argv)
    stop = [False]

    def on_term(*_: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    queue = Queue(a.queue)
    if a.ready:
        a.ready.write_text(str(os.getpid()))
    delays = Delays(a.min_ms / 1000, a.max_ms / 1000, a.keep_order, random.Random(a.seed))
    count = serve(queue, delays, stop)
    queue.close()
    print(f"delayed {count} packets", flush=True)
    return 0


# -- driving it from the harness ---------------------------------------------------------------


@dataclass
class Delayer:
    """A reader running in ``host`` and the iptables rule that feeds it."""

    host: Host
    peers: list[str]
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Rule first (new packets pass), then the reader lets the held ones go."""
        _iptables(self.host, "-D", self.peers, check=False)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _iptables(host: Host, op: str, peers: list[str], check: bool = True) -> None:
    rule = ["OUTPUT", "-d", ",".join(peers), "-j", "NFQUEUE", "--queue-num", "0"]
    host.run(["iptables", "-w", "5", op, *rule, "--queue-bypass"], check=check, timeout=15)


def start(
    hosts: list[Host],
    among: list[Host],
    *,
    low_ms: float = 20.0,
    high_ms: float = 200.0,
    keep_order: bool = False,
    seed: int = 0,
    timeout: float = 30.0,
) -> list[Delayer]:
    """Delay every packet each of ``hosts`` sends to the others of ``among`` by
    ``low_ms``..``high_ms`` (reordered unless ``keep_order``) until :meth:`Delayer.stop`.
    The readers start together (a Python start is slow on a loaded machine), and a host's rule
    is added once its reader has bound the queue."""
    started = []
    for i, host in enumerate(hosts):
        ready = host.network.workdir / f"delayer-{host.name}-{os.urandom(3).hex()}.ready"
        argv = [sys.executable, "-m", "hakube.testing.jepsen.delayer", "--ready", str(ready)]
        argv += ["--min-ms", str(low_ms), "--max-ms", str(high_ms), "--seed", str(seed + i)]
        argv += ["--keep-order"] if keep_order else []
        log = host.network.workdir / f"delayer-{host.name}.log"
        started.append((host, ready, log, host.spawn(argv, log=log)))
    out = []
    deadline = time.monotonic() + timeout
    try:
        for host, ready, log, proc in started:
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"delayer on {host.name} did not start: {log.read_text()[-500:]}"
                    )
                time.sleep(0.02)
            ips = [p.ip for p in among if p is not host]
            out.append(Delayer(host, ips, proc))
            _iptables(host, "-I", ips)
    except BaseException:
        for d in out:
            d.stop()
        for _, _, _, proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    return out


if __name__ == "__main__":
    sys.exit(main())
