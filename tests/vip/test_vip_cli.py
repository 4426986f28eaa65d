"""``hakube keepalived render``: files written on good flags, one line and exit 2 on bad ones."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pytest

from hakube.cli.main import main
from hakube.vip import cli


def hakube(argv: list[str]) -> int:
    """Parse and run as hakube's main CLI does (flags > HAKUBE_* > config file; a bad setting
    is one line and exit status 2)."""
    return main(argv)


def render_argv(out: Path, **flags: str) -> list[str]:
    given = {
        "--vip": "192.0.2.100",
        "--interface": "eth0",
        "--interface-address": "192.0.2.11/24",
        "--peers": "192.0.2.12,192.0.2.13",
        "--readyz-url": "http://127.0.0.1:9100/readyz",
        "--out-dir": str(out),
        "--script-user": "root",  # pytest's tmp dirs are 0700: nobody could not run the check
    }
    given.update({f"--{k.replace('_', '-')}": v for k, v in flags.items()})
    argv = ["keepalived", "render"]
    for flag, value in given.items():
        if value is not None:
            argv += [flag, value]
    return argv


def test_add_parser_registers_keepalived_with_run() -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    assert cli.add_parser(sub) == {"keepalived": cli.run}


def test_render_writes_config_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = render_argv(tmp_path, router_id="7", priority="90", advert_int="0.75")
    assert hakube(argv) == 0
    conf = (tmp_path / "keepalived.conf").read_text()
    assert "virtual_router_id 7" in conf
    assert "priority 90" in conf
    assert "advert_int 0.75" in conf
    assert "http://127.0.0.1:9100/readyz" in (tmp_path / "hakube-readyz-check").read_text()
    assert str(tmp_path / "keepalived.conf") in capsys.readouterr().out


def test_vip_may_carry_its_own_prefix(tmp_path: Path) -> None:
    assert hakube(render_argv(tmp_path, vip="192.0.2.100/32")) == 0
    assert "192.0.2.100/32 dev eth0" in (tmp_path / "keepalived.conf").read_text()


def test_vrrp2_with_password(tmp_path: Path) -> None:
    assert hakube(render_argv(tmp_path, vrrp_version="2", advert_int="1", auth_pass="hakube1")) == 0
    assert "auth_pass hakube1" in (tmp_path / "keepalived.conf").read_text()


BAD = [
    ({"vip": "192.0.3.100"}, "--vip: 192.0.3.100 is not inside 192.0.2.0/24"),
    ({"vip": "192.0.2.100/40"}, "--vip: 40 is not within 1..32"),
    ({"vip": "192.0.2.100/x"}, "--vip: 'x' is not a whole number"),
    ({"interface_address": "192.0.2.11"}, "--interface-address: '192.0.2.11' needs a prefix"),
    ({"interface": None}, "missing required setting --interface"),
    ({"vip": None, "peers": None}, "missing required setting --vip, --peers"),
    ({"peers": "192.0.2.12,192.0.2.12"}, "--peers: 192.0.2.12 is listed twice"),
    ({"peers": "192.0.2.12,192.0.2.11"}, "--peers: 192.0.2.11 is this master's own address"),
    ({"router_id": "0"}, "--router-id: 0 is not within 1..255"),
    ({"router_id": "256"}, "--router-id: 256 is not within 1..255"),
    ({"router_id": "fifty"}, "--router-id: 'fifty' is not a whole number"),
    ({"priority": "255"}, "--priority: 255 is not within 1..254"),
    ({"advert_int": "0"}, "--advert-int: 0.0 is not a positive number"),
    ({"advert_int": "soon"}, "--advert-int: 'soon' is not a number"),
    ({"vrrp_version": "2", "advert_int": "0.5"}, "--advert-int: 0.5 is not whole seconds"),
    ({"auth_pass": "hakube1"}, "--auth-pass: VRRPv3 has no authentication"),
    ({"readyz_url": "localhost:9100"}, "--readyz-url: 'localhost:9100' is not an http(s) URL"),
]


@pytest.mark.parametrize(("flags", "message"), BAD, ids=[b[1].split(":")[0] for b in BAD])
def test_bad_flags_print_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: dict[str, str], message: str
) -> None:
    out = tmp_path / "out"
    assert hakube(render_argv(out, **flags)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"hakube keepalived render: {message}")
    assert not out.exists(), "nothing may be written when a flag is bad"


def test_a_check_its_user_cannot_run_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # keepalived would report such a check as passed without running it (VIP kept when dead).
    assert hakube(render_argv(tmp_path, script_user="nobody")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--script-user" in err and "cannot be searched" in err
    searchable = Path(tempfile.mkdtemp(prefix="hakube-render-"))
    try:
        searchable.chmod(0o755)
        assert hakube(render_argv(searchable, script_user="nobody")) == 0
        assert hakube(render_argv(searchable, script_user="no-such-user-x")) == 1
        assert "does not exist" in capsys.readouterr().err
    finally:
        shutil.rmtree(searchable)
