"""Leader election against three real masters: one leader, fast handover, fencing.

Timings are short (lease 2 s, renew deadline 1.5 s) so the tests are quick; bounds asserted are
loose because the machine is shared, and the order of events (the old holder stops before the
new one starts) is what must hold exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from hakube.client import Client, errors
from hakube.leaderelection import Component, ElectionConfig
from hakube.lifecycle import Running
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)

LEASE = 2
RENEW = 1.5
RETRY = 0.2


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    return masters3


@pytest.fixture
def healed(cluster: LocalCluster) -> Iterator[LocalCluster]:
    yield cluster
    for m in cluster.masters:
        if not m.alive:
            cluster.start(m)
    cluster.wait_ready(timeout=30)


class Recorder:
    """A component's work: notes when it started and stopped leading."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.stopped: list[float] = []

    def __call__(self, client: Client, leading: threading.Event) -> None:
        self.started.append(time.monotonic())
        leading.wait()
        self.stopped.append(time.monotonic())

    @property
    def leading(self) -> bool:
        return len(self.started) > len(self.stopped)


def config(lease: str, identity: str) -> ElectionConfig:
    return ElectionConfig(
        name=lease,
        identity=identity,
        lease_duration=LEASE,
        renew_deadline=RENEW,
        retry_period=RETRY,
    )


def component(
    endpoints: list[str], lease: str, identity: str
) -> tuple[Running[Component], Recorder]:
    rec = Recorder()
    client = Client(endpoints, timeout=5)
    return Running.start(Component(client, config(lease, identity), rec)), rec


def holder(client: Client, lease: str) -> str:
    return client.leases.get(lease, namespace="kube-system").spec.holder_identity


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        ElectionConfig(name="x", identity="a", lease_duration=2, renew_deadline=2.0)
    with pytest.raises(ValueError, match="identity"):
        ElectionConfig(name="x", identity="")


def test_one_leader_and_a_clean_stop_hands_over_at_once(cluster: LocalCluster) -> None:
    eps = cluster.endpoints()
    a, rec_a = component(eps, "le-handover", "a")
    b, rec_b = component(eps, "le-handover", "b")
    try:
        wait_for(lambda: rec_a.leading or rec_b.leading, 15, "a leader")
        # Several renewals later there is still exactly one.
        deadline = time.monotonic() + 3 * LEASE
        while time.monotonic() < deadline:
            assert not (rec_a.leading and rec_b.leading)
            time.sleep(0.05)
        first, second, rec_second = (a, b, rec_b) if rec_a.leading else (b, a, rec_a)
        assert [rec_a.leading, rec_b.leading].count(True) == 1
        with Client(eps) as c:
            assert holder(c, "le-handover") == first.service.config.identity
        at = time.monotonic()
        first.stop()
        wait_for(lambda: rec_second.leading, 10, "the other candidate to lead")
        took = rec_second.started[0] - at
        print(f"leader election: handover after a clean stop took {took:.2f} s")
        assert took < LEASE  # released, not expired
        with Client(eps) as c:
            lease = c.leases.get("le-handover", namespace="kube-system")
        assert lease.spec.holder_identity == second.service.config.identity
        assert lease.spec.lease_transitions == 1
    finally:
        a.stop()
        b.stop()


_VICTIM = """
import sys, threading
from hakube.client import Client, errors
from hakube.leaderelection import Component, ElectionConfig
def work(client, leading):
    print("LEADING", flush=True)
    leading.wait()
cfg = ElectionConfig(name=sys.argv[2], identity="victim", lease_duration=int(sys.argv[3]),
                     renew_deadline=float(sys.argv[4]), retry_period=float(sys.argv[5]))
Component(Client(sys.argv[1].split(",")), cfg, work).run()
"""


def test_takeover_after_the_holder_process_is_killed(cluster: LocalCluster) -> None:
    eps = cluster.endpoints()
    victim = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _VICTIM,
            ",".join(eps),
            "le-kill",
            str(LEASE),
            str(RENEW),
            str(RETRY),
        ],
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        start_new_session=True,
    )
    b = None
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == b"LEADING"
        b, rec_b = component(eps, "le-kill", "b")  # must not win while the victim renews
        deadline = time.monotonic() + 2 * LEASE
        while time.monotonic() < deadline:
            assert not rec_b.leading
            time.sleep(0.05)
        at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_for(lambda: rec_b.leading, 15, "the survivor to lead")
        took = rec_b.started[0] - at
        print(f"leader election: takeover after SIGKILL of the holder took {took:.2f} s")
        assert took < LEASE + 3  # lease duration plus retry, loosely
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        if b is not None:
            b.stop()


def test_a_holder_cut_off_from_the_masters_stops_before_anyone_else_starts(
    healed: LocalCluster,
) -> None:
    cluster = healed
    only = cluster.masters[0]
    a, rec_a = component([only.api], "le-fence", "a")
    wait_for(lambda: rec_a.leading, 15, "a to lead")
    b, rec_b = component(cluster.endpoints(), "le-fence", "b")
    try:
        cluster.kill(only)  # a's only way to the cluster is gone; b fails over
        wait_for(lambda: rec_b.leading, 20, "b to take over")
        assert rec_a.stopped, "a never stopped leading"
        assert not a.service.elector.is_leader()
        gap = rec_b.started[0] - rec_a.stopped[0]
        print(f"leader election: fenced holder stopped {gap:.2f} s before the successor started")
        assert gap > 0
    finally:
        a.stop(5)
        b.stop()


def test_a_holder_whose_lease_was_taken_by_a_write_it_did_not_make_steps_down(
    cluster: LocalCluster,
) -> None:
    """The holder renews from the record it last wrote (one write, no read); that write is a
    compare-and-swap, so a lease someone else took in between is noticed, not overwritten."""
    eps = cluster.endpoints()
    a, rec = component(eps, "le-taken", "a")
    try:
        wait_for(lambda: rec.leading, 15, "a to lead")
        with Client(eps) as c:
            wait_for(
                lambda: (
                    c.leases.get("le-taken", namespace="kube-system").spec.renew_time
                    != c.leases.get("le-taken", namespace="kube-system").spec.acquire_time
                ),
                15,
                "a renewal",
            )
            for _ in range(20):  # the holder's renewals race this read-modify-write
                lease = c.leases.get("le-taken", namespace="kube-system")
                lease.spec.holder_identity = "intruder"
                lease.spec.lease_duration_seconds = 3600
                try:
                    c.leases.update(lease)
                    break
                except errors.Conflict:
                    continue
            wait_for(lambda: not rec.leading, 2 * LEASE, "a to step down")
            assert holder(c, "le-taken") == "intruder", "the holder overwrote someone's lease"
    finally:
        a.stop()


def test_renewals_do_not_share_the_works_connection(cluster: LocalCluster) -> None:
    """The holder renews on connections of its own: work that wrecks its client (here, closes
    it; in the scale run, 30,000 pods of watches and batched writes) does not cost the lease."""
    eps = cluster.endpoints()

    def wrecker(client: Client, leading: threading.Event) -> None:
        client.close()  # every later call on the work's client fails at once
        rec(client, leading)

    rec = Recorder()
    a = Running.start(Component(Client(eps, timeout=5), config("le-own", "a"), wrecker))
    try:
        wait_for(lambda: rec.leading, 15, "a to lead")
        with Client(eps) as c:
            first = c.leases.get("le-own", namespace="kube-system").spec.renew_time
            deadline = time.monotonic() + 3 * LEASE
            while time.monotonic() < deadline:
                assert rec.leading, "the holder stepped down although its lease could be renewed"
                time.sleep(0.05)
            lease = c.leases.get("le-own", namespace="kube-system")
        assert lease.spec.holder_identity == "a" and lease.spec.renew_time != first
        assert a.service.election_client.transport.own_connection
    finally:
        a.stop()
