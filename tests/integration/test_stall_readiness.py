"""A master whose event loop or Raft thread is wedged turns /readyz false (its HTTP thread keeps
answering, and used to say 200), so keepalived moves the VIP away; it turns true again once the
stall ends. The master runs in this process so that the test can block its loop or Raft thread
directly."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hakube.httpendpoint import Heartbeats
from hakube.lifecycle import Running
from hakube.local.cluster import cluster_pki, free_ports
from hakube.master import Master, MasterSettings
from hakube.testing import pki as testpki
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def test_heartbeats_name_what_went_silent() -> None:
    now = [100.0]
    hb = Heartbeats(5.0, clock=lambda: now[0])
    hb.beat("event loop")
    hb.beat("raft thread")
    now[0] += 4.9
    hb.beat("raft thread")
    assert hb.stalled() == {}
    now[0] += 0.2
    assert list(hb.stalled()) == ["event loop"]


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_a_wedged_loop_or_raft_thread_turns_readyz_false(tmp_path: Path) -> None:
    api, raft, metrics = free_ports(3)
    pki = cluster_pki(str(tmp_path / "pki"), {"m1": ["127.0.0.1"]}, testpki.shared())
    master = Master(
        MasterSettings(
            name="m1",
            data_dir=str(tmp_path / "data"),
            api_listen=f"127.0.0.1:{api}",
            raft_listen=f"127.0.0.1:{raft}",
            peers={},
            metrics_listen=f"127.0.0.1:{metrics}",
            pki_dir=pki.root,
            stall_after=2.0,
            raft={"fsync": False},
        )
    )
    running = Running.start(master)
    try:
        wait_for(lambda: _readyz(metrics) == 200, 60, "the master to be ready")
        assert master.loop is not None
        master.loop.call_soon_threadsafe(time.sleep, 6)  # wedge the event loop
        wait_for(lambda: _readyz(metrics) == 503, 5, "/readyz to report the stalled loop")
        wait_for(lambda: _readyz(metrics) == 200, 20, "/readyz to recover after the stall")
        assert master.raft is not None
        master.raft._on_raft_thread.append(lambda: time.sleep(6))  # wedge the Raft thread
        wait_for(lambda: _readyz(metrics) == 503, 5, "/readyz to report the stalled Raft thread")
        wait_for(lambda: _readyz(metrics) == 200, 20, "/readyz to recover")
    finally:
        assert running.stop(30), "the master did not stop"
