"""Rendering: what the config says, what the check script does, and what keepalived accepts."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hakube.testing.netns import Network
from hakube.vip import ConfigTestError, VipSettings, config_test, render, write_files


def conf_of(settings: VipSettings) -> str:
    return render(settings, script_path="/etc/keepalived/hakube-readyz-check").conf


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_every_master_starts_as_backup_and_never_preempts(settings: VipSettings) -> None:
    got = lines(conf_of(settings))
    assert "state BACKUP" in got
    assert "nopreempt" in got
    assert "state MASTER" not in got


def test_adverts_go_only_to_the_listed_peers_from_this_masters_address(
    settings: VipSettings,
) -> None:
    text = conf_of(settings)
    got = lines(text)
    assert "unicast_src_ip 192.0.2.11" in got
    assert "unicast_fault_no_peer" in got
    assert "check_unicast_src" in got
    peers = text.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == ["192.0.2.12", "192.0.2.13"]
    assert "mcast" not in text


def test_the_vip_is_added_in_the_subnet_of_the_interface(settings: VipSettings) -> None:
    assert "192.0.2.100/24 dev eth0" in lines(conf_of(settings))
    assert "192.0.2.100/32 dev eth0" in lines(conf_of(replace(settings, vip_prefix=32)))


def test_the_check_runs_unprivileged_under_script_security(settings: VipSettings) -> None:
    got = lines(conf_of(replace(settings, check_fall=3, check_rise=4)))
    assert "enable_script_security" in got
    assert "script_user nobody" in got
    assert 'script "/etc/keepalived/hakube-readyz-check"' in got
    assert {"interval 1", "fall 3", "rise 4", "timeout 1"} <= set(got)
    assert "hakube_readyz" in conf_of(settings).split("track_script {")[1]


@pytest.mark.parametrize(("advert", "text"), [(1.0, "advert_int 1"), (0.25, "advert_int 0.25")])
def test_vrrp3_adverts_may_be_sub_second(settings: VipSettings, advert: float, text: str) -> None:
    got = lines(conf_of(replace(settings, advert_int=advert)))
    assert "version 3" in got
    assert text in got
    assert "authentication {" not in got


def test_vrrp2_carries_the_password(settings: VipSettings) -> None:
    got = lines(conf_of(replace(settings, vrrp_version=2, advert_int=1, auth_pass="hakube1")))
    assert {"version 2", "auth_type PASS", "auth_pass hakube1"} <= set(got)


def test_write_files_puts_an_executable_script_beside_the_config(
    settings: VipSettings, tmp_path: Path
) -> None:
    conf, script = write_files(settings, tmp_path / "ka")
    assert f'script "{script}"' in conf.read_text()
    assert script.stat().st_mode & 0o777 == 0o755
    assert conf.stat().st_mode & 0o777 == 0o640
    assert script.read_text().startswith("#!/usr/bin/python3 -I\n")


# -- the check script, against a readiness endpoint on loopback -------------------------------


@pytest.fixture
def readyz() -> Iterator[tuple[str, list[int]]]:
    """A loopback /readyz whose status code the test sets through the returned list."""
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(status[0] if self.path == "/readyz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz", status
    finally:
        server.shutdown()
        server.server_close()


def run_check(settings: VipSettings, tmp_path: Path) -> int:
    _, script = write_files(settings, tmp_path / "ka")
    env = {"PATH": "/usr/bin:/bin", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    return subprocess.run([sys.executable, str(script)], env=env, timeout=10).returncode


@pytest.mark.parametrize(("code", "exit_status"), [(200, 0), (503, 1), (500, 1), (204, 1)])
def test_the_check_passes_only_on_200(
    settings: VipSettings,
    tmp_path: Path,
    readyz: tuple[str, list[int]],
    code: int,
    exit_status: int,
) -> None:
    url, status = readyz
    status[0] = code
    assert run_check(replace(settings, readyz_url=url), tmp_path) == exit_status


def test_the_check_fails_when_nothing_listens(settings: VipSettings, tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/readyz"
    assert run_check(replace(settings, readyz_url=url), tmp_path) != 0


# -- keepalived --config-test, inside a namespace that has the interface ----------------------

VARIANTS = {
    "vrrp3-1s": {},
    "vrrp3-sub-second": {"advert_int": 0.25},
    "vrrp2-with-password": {"vrrp_version": 2, "auth_pass": "hakube1", "advert_int": 2},
    "vip-slash-32": {"vip_prefix": 32},
    "five-masters": {"peers": ("192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.15")},
    "slow-careful-check": {"check_interval": 3, "check_timeout": 2.5, "check_fall": 3},
    "root-script-user": {"script_user": "root", "virtual_router_id": 255, "priority": 1},
}


@pytest.mark.netns
@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_keepalived_accepts_the_rendered_config(
    net: Network, keepalived_available: None, settings: VipSettings, changes: dict[str, object]
) -> None:
    host = net.add_host("m1", "192.0.2.11/24")
    conf, _ = write_files(replace(settings, **changes), net.workdir / "ka")  # type: ignore[arg-type]
    config_test(conf, netns=host.netns)


@pytest.mark.netns
def test_config_test_reports_what_keepalived_rejects(
    net: Network, keepalived_available: None, settings: VipSettings
) -> None:
    host = net.add_host("m1", "192.0.2.11/24")
    conf, _ = write_files(replace(settings, interface="eth9"), net.workdir / "ka")
    with pytest.raises(ConfigTestError, match="interface eth9"):
        config_test(conf, netns=host.netns)
    broken = net.workdir / "broken.conf"
    broken.write_text(conf.read_text().replace("interval 1", "interval 0.5"))
    with pytest.raises(ConfigTestError, match="invalid number '0.5'"):
        config_test(broken, netns=host.netns)
