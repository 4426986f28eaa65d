"""The delay/reorder fault on a real flow: one host sends numbered UDP datagrams to another,
which records when each arrives (one-way delay on the machine's single monotonic clock) and in
what order. Without the fault they arrive at once and in order; with it every datagram still
arrives, late by the range asked for, and — unless order is kept — out of order."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator

import pytest

from hakube.testing.jepsen import delayer
from hakube.testing.netns import Host, Network, unavailable_reason
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(180)]

COUNT = 300
PORT = 9999

RECEIVE = f"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {PORT}))
open(sys.argv[1], "w").close()
s.settimeout(5.0)
got = []
try:
    while len(got) < {COUNT}:
        data = s.recv(100)
        seq, sent = data.decode().split(",")
        got.append((int(seq), time.monotonic() - float(sent)))
except socket.timeout:
    pass
print(json.dumps(got))
"""

SEND = f"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({COUNT}):
    s.sendto(f"{{i}},{{time.monotonic()}}".encode(), (sys.argv[1], {PORT}))
    time.sleep(0.002)
"""


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Host, Host]]:
    require(unavailable_reason())
    if shutil.which("iptables") is None:
        require("iptables is not installed (scripts/install/iptables.sh)")
    with Network() as net:
        yield net.add_host("a", "192.0.2.1"), net.add_host("b", "192.0.2.2")


def _flow(a: Host, b: Host) -> list[tuple[int, float]]:
    """Send COUNT datagrams a -> b; (sequence number, one-way delay) in arrival order."""
    ready = a.network.workdir / "receiver.ready"
    ready.unlink(missing_ok=True)
    out = a.network.workdir / "receiver.out"
    out.unlink(missing_ok=True)
    recv = b.spawn([sys.executable, "-c", RECEIVE, str(ready)], log=out)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert recv.poll() is None and time.monotonic() < deadline, out.read_text()
        time.sleep(0.02)
    a.run([sys.executable, "-c", SEND, b.ip], timeout=60)
    recv.wait(timeout=60)
    return [(s, d) for s, d in json.loads(out.read_text())]


def _inversions(seqs: list[int]) -> int:
    """Datagrams that arrived after one sent later than them."""
    highest, count = -1, 0
    for s in seqs:
        if s < highest:
            count += 1
        highest = max(highest, s)
    return count


def test_without_the_fault_datagrams_arrive_at_once_and_in_order(hosts: tuple[Host, Host]) -> None:
    got = _flow(*hosts)
    assert len(got) == COUNT
    assert _inversions([s for s, _ in got]) == 0
    delays = sorted(d for _, d in got)
    assert delays[len(delays) // 2] < 0.02, delays[len(delays) // 2]


def test_reorder_delays_every_datagram_and_reorders_them(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    (fault,) = delayer.start([a], [a, b], low_ms=20, high_ms=200, seed=1)
    try:
        got = _flow(a, b)
    finally:
        fault.stop()
    assert sorted(s for s, _ in got) == list(range(COUNT)), "a datagram was lost"
    delays = sorted(d for _, d in got)
    assert delays[0] >= 0.02, delays[0]
    assert delays[len(delays) // 2] > 0.08, delays[len(delays) // 2]
    # sent 2 ms apart with delays spread over 180 ms: most overtake or are overtaken
    inversions = _inversions([s for s, _ in got])
    print(
        f"one-way delay min {delays[0] * 1000:.0f} ms, median "
        f"{delays[COUNT // 2] * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms; "
        f"{inversions} of {COUNT} out of order"
    )
    assert inversions > COUNT // 4


def test_delay_with_order_kept_delays_without_reordering(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    (fault,) = delayer.start([a], [a, b], low_ms=20, high_ms=200, keep_order=True, seed=2)
    try:
        got = _flow(a, b)
    finally:
        fault.stop()
    assert [s for s, _ in got] == list(range(COUNT))
    assert min(d for _, d in got) >= 0.02
    # after the fault the rule is gone: back to no delay
    again = _flow(a, b)
    assert sorted(d for _, d in again)[COUNT // 2] < 0.02
