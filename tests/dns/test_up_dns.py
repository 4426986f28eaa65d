"""``hakube up`` runs cluster DNS and creates the kube-dns Service naming it."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from hakube.local.dns import CLUSTER_DNS_IP, DnsAddress
from hakube.testing.wait import wait_for
from tests.cli.test_up import Up, hakubectl
from tests.dns.conftest import answers

pytestmark = pytest.mark.timeout(120)


def test_up_serves_cluster_dns_and_publishes_it_as_kube_dns(tmp_path: object) -> None:
    home = str(tmp_path)
    data, cfg = os.path.join(home, "data"), os.path.join(home, "cfg")
    args = ("--data-dir", data, "--client-config", cfg, "--masters", "1", "--nodes", "0")
    up = Up(home, *args, "--no-components")
    try:
        line = up.expect("cluster DNS")
        m = re.search(r"udp\+tcp (127\.0\.0\.1):(\d+)", line)
        assert m, line
        addr = DnsAddress(m.group(1), int(m.group(2)))
        name = "kube-dns.kube-system.svc.cluster.local."
        wait_for(lambda: answers(addr, name) == {CLUSTER_DNS_IP}, 30, "kube-dns answered")
        r = hakubectl(home, cfg, "get", "endpoints", "kube-dns", "-n", "kube-system", "-o", "yaml")
        eps = yaml.safe_load(r.stdout)
        assert eps["subsets"][0]["addresses"] == [{"ip": addr.ip}]
        assert {p["port"] for p in eps["subsets"][0]["ports"]} == {addr.port}
        assert os.path.exists(os.path.join(data, "dns.log"))
        # hakube up killed outright leaves its DNS running; the next one on the same data dir
        # stops it and serves again on the same address.
        up.proc.kill()
        up.proc.wait(10)
        again = Up(home, *args, "--no-components")
        try:
            again.expect("stopping leftover dns")
            line = again.expect("cluster DNS")
            assert f"udp+tcp {addr.ip}:{addr.port}" in line, line
            wait_for(lambda: answers(addr, name) == {CLUSTER_DNS_IP}, 30, "answered again")
            assert again.stop() == 0
        finally:
            again.close(data)
    finally:
        up.close(data)
