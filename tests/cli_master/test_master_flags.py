"""`hakube master` refuses bad settings at start with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hakube.local.cluster import free_ports
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(60)


def run_master(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hakube", "master", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **(env or {})),
    )


def test_missing_required_settings_are_named() -> None:
    r = run_master("--name", "m1")
    assert r.returncode == 2
    assert r.stderr.strip() == "hakube master: missing required setting --data-dir, --raft-listen"


def test_a_malformed_peer_list_is_refused(tmp_path: Path) -> None:
    r = run_master(
        "--name",
        "m1",
        "--data-dir",
        str(tmp_path),
        "--raft-listen",
        "127.0.0.1:1",
        "--peers",
        "m2:127.0.0.1:2",
    )
    assert r.returncode == 2
    assert 'peer "m2:127.0.0.1:2" is not NAME=HOST:PORT' in r.stderr


def test_a_peer_with_this_masters_address_is_refused(tmp_path: Path) -> None:
    r = run_master(
        "--name",
        "m1",
        "--data-dir",
        str(tmp_path),
        "--raft-listen",
        "127.0.0.1:7001",
        "--peers",
        "m2=127.0.0.1:7001",
    )
    assert r.returncode == 2
    assert (
        r.stderr.strip() == "hakube master: peer m2 uses this master's raft address 127.0.0.1:7001"
    )


def test_settings_come_from_the_environment_and_a_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "master.yaml"
    cfg.write_text("name: m1\nraft-listen: 127.0.0.1:7001\npeers: bad-peer\n")
    r = run_master("--data-dir", str(tmp_path), env={"HAKUBE_CONFIG": str(cfg)})
    assert r.returncode == 2 and "not NAME=HOST:PORT" in r.stderr
    cfg.write_text("name: m1\nraft-listen: 127.0.0.1:7001\nbogus: 1\n")
    r = run_master(env={"HAKUBE_CONFIG": str(cfg)})
    assert r.returncode == 2 and 'unknown setting "bogus"' in r.stderr
    r = run_master(env={"HAKUBE_NAME": "from-env", "HAKUBE_DATA_DIR": str(tmp_path)})
    assert r.returncode == 2 and r.stderr.strip().endswith("--raft-listen")


def test_an_unusable_data_dir_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    a, b = free_ports(2)
    r = run_master(
        "--name",
        "m1",
        "--data-dir",
        str(blocker / "sub"),
        "--raft-listen",
        f"127.0.0.1:{a}",
        "--api-listen",
        f"127.0.0.1:{b}",
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"hakube master: data dir {blocker}")


def test_a_data_dir_in_use_by_another_master_is_refused(tmp_path: Path) -> None:
    with LocalCluster(str(tmp_path), 1) as c:
        m = c.masters[0]
        a, b = free_ports(2)
        r = run_master(
            "--name",
            "m1",
            "--data-dir",
            m.data_dir,
            "--raft-listen",
            f"127.0.0.1:{a}",
            "--api-listen",
            f"127.0.0.1:{b}",
        )
        assert r.returncode == 1
        assert "is in use by another master" in r.stderr


@pytest.mark.parametrize(
    ("argv", "env", "config", "expected"),
    [
        ([], {}, "", True),  # durable by default
        (["--no-fsync"], {}, "", False),
        ([], {"HAKUBE_FSYNC": "false"}, "", False),
        ([], {}, "fsync: false\n", False),
        (["--fsync"], {"HAKUBE_FSYNC": "false"}, "", True),  # the flag wins
    ],
)
def test_fsync_is_on_unless_turned_off(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    config: str,
    expected: bool,
) -> None:
    from hakube.cli.main import parse

    monkeypatch.delenv("HAKUBE_CONFIG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    extra = []
    if config:
        (tmp_path / "master.yaml").write_text(config)
        extra = ["--config", str(tmp_path / "master.yaml")]
    required = ["--name", "m1", "--data-dir", str(tmp_path), "--raft-listen", "127.0.0.1:7001"]
    settings = parse([*extra, "master", *required, *argv])[2]
    assert settings.raft.fsync is expected
