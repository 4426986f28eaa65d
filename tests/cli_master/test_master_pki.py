"""`hakube master` and its PKI directory: a lone new master makes the cluster CA and its own
certificate (covering the listen hosts and --cert-sans); a master with peers never makes a CA of
its own (it could not talk to them) and says what to do instead."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hakube.local.cluster import free_ports
from hakube.pki import certs, files
from hakube.pki.layout import Pki
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(90)


def test_a_master_with_peers_and_no_cluster_ca_refuses_to_start_with_one_line(
    tmp_path: Path,
) -> None:
    raft, peer = free_ports(2)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube",
            "master",
            "--name",
            "m2",
            "--data-dir",
            str(tmp_path / "d"),
            "--raft-listen",
            f"127.0.0.1:{raft}",
            "--peers",
            f"m1=127.0.0.1:{peer}",
            "--api-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("hakube master: no cluster CA in ")
    assert "ca.crt and ca.key from the first master" in lines[0]
    assert not Pki(str(tmp_path / "d" / "pki")).has_ca()


def test_a_lone_new_master_creates_the_ca_and_a_certificate_for_its_hosts_and_sans(
    tmp_path: Path,
) -> None:
    api, raft, metrics = free_ports(3)
    pki = Pki(str(tmp_path / "pki"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hakube",
            "master",
            "--name",
            "m1",
            "--data-dir",
            str(tmp_path / "d"),
            "--raft-listen",
            f"127.0.0.1:{raft}",
            "--api-listen",
            f"127.0.0.1:{api}",
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
            "--pki-dir",
            pki.root,
            "--cert-sans",
            "10.9.8.7,vip.example",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, 30, "the master to be ready")
        assert pki.has_ca() and os.path.exists(pki.ca_key)
        cert = certs.load_cert(files.read(pki.master_cert("m1")))
        assert certs.identity_of(cert).user == "system:hakube-master:m1"
        assert {"127.0.0.1", "10.9.8.7", "vip.example"} <= set(certs.hosts_of(cert))
    finally:
        proc.terminate()
        proc.wait(10)
