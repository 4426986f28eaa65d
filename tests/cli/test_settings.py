"""Every command's settings (a daemon's, or a tool action's such as ``certs init``) come from one
dataclass: each has help, a flag, a ``HAKUBE_*`` variable and a config key that set the same
field, with flag > env > file > default; a bad value is one line naming the flag and exit
status 2; docs/settings.md lists them all."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakube.cli.main import build_parser, main, parse
from hakube.cli.settings_ref import commands
from hakube.settings import Leaf, leaves, reference

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "settings.md"

# Values for settings whose text a generic rule cannot invent (addresses, CIDRs, lists of
# names); every other setting gets one derived from its type and default.
SAMPLES = {
    "listen": "127.0.0.1:5353",
    "upstream": "127.0.0.9:53",
    "cluster-cidr": "10.200.0.0/16",
    "service-cluster-ip-range": "10.97.0.0/16",
    "controllers": "job,podgc",
    "peers": "m2=127.0.0.1:7002,m3=127.0.0.1:7003",
    "cert-sans": "10.0.0.100,vip.example",
    "api-audiences": "hakube,vault",
    "servers": "10.0.0.1:6443,10.0.0.2:6443",
    "labels": "zone=a,rack=r1",
    "register-with-taints": "gpu=yes:NoSchedule",
    "cluster-dns": "10.96.0.11",
    "pod-cidr": "10.244.5.0/24",
    "master": "m1=10.0.0.1,m1.lan",
}
# Per command, where the same name means another thing or the generic value breaks a rule.
COMMAND_SAMPLES = {
    "up": {"masters": "5", "base-port": "20000", "dns-listen": "127.0.0.1:5354"},
    "token create": {"ttl": "2h"},
    "snapshot restore": {"raft-listen": "127.0.0.1:7009"},
    "keepalived render": {
        "vip": "192.0.2.101",
        "interface": "eth1",
        "interface-address": "192.0.2.14/24",
        "peers": "192.0.2.12,192.0.2.13",
        "readyz-url": "http://127.0.0.1:9200/readyz",
        "check-timeout": "0.5",
        "vrrp-version": "2",
    },
}

# Settings a daemon requires, given as flags unless the one under test is among them.
PKI = {"--pki-dir": "/etc/hakube/pki"}
REQUIRED = {
    "master": {"--name": "m1", "--data-dir": "/var/lib/m1", "--raft-listen": "127.0.0.1:7001"},
    "agent": {"--node-name": "n1", "--servers": "127.0.0.1:6443"},
    "proxy": {"--cluster-cidr": "10.244.0.0/16"},  # what --fast-path-device needs
    "keepalived render": {
        "--vip": "192.0.2.100",
        "--interface": "eth0",
        "--interface-address": "192.0.2.11/24",
        "--peers": "192.0.2.12",
        "--readyz-url": "http://127.0.0.1:9100/readyz",
    },
    "snapshot restore": {
        "--data-dir": "/var/lib/m1",
        "--name": "m1",
        "--raft-listen": "127.0.0.1:7001",
    },
    "members add": {"--raft": "127.0.0.1:7004", "--api": "127.0.0.1:6447"},
    "certs init": PKI,
    "certs check-expiration": PKI,
    "certs renew": PKI,
}
# A tool's required operands.
OPERANDS = {
    "snapshot save": ["backup.snap"],
    "snapshot inspect": ["backup.snap"],
    "snapshot restore": ["backup.snap"],
    "members add": ["m4"],
    "members remove": ["m3"],
    "token delete": ["abcdef"],
    "secrets new-config": ["keys.yaml"],
}
# Settings that only go together: testing one gives the others too.
COMPANIONS = {
    "--token": ("--ca-cert-hash", "sha256:" + "0" * 64),
    "--ca-cert-hash": ("--token", "abcdef.0123456789abcdef"),
    "--vrrp-version": ("--advert-int", "1"),
    "--auth-pass": ("--vrrp-version", "2", "--advert-int", "1"),
}
# The numeric setting the precedence test moves up by one at each step.
NUMERIC_LEAF = {"up": "--nodes"}

DAEMONS = [(name, cls) for name, cls in commands() if not name.startswith("(")]
NUMERIC = [(n, c) for n, c in DAEMONS if any(x.kind in (int, float) for x in leaves(c))]
PARSER = build_parser()[0]


def sample(leaf: Leaf, command: str = "") -> str:
    """A valid value for ``leaf`` that differs from its default, as text."""
    if leaf.name in COMMAND_SAMPLES.get(command, {}):
        return COMMAND_SAMPLES[command][leaf.name]
    if leaf.name in SAMPLES:
        return SAMPLES[leaf.name]
    if leaf.kind is bool:
        return str(not leaf.default).lower()
    if leaf.spec.choices:
        return next(c for c in leaf.spec.choices if c != leaf.default)
    if leaf.kind is int:
        return str(leaf.default + 1)
    if leaf.kind is float:
        return str(leaf.default + 0.25)
    assert leaf.kind is str and leaf.spec.parse is None, f"add {leaf.name} to SAMPLES"
    return f"{leaf.default}x"


def flag_words(leaf: Leaf, text: str) -> list[str]:
    if leaf.kind is bool and not leaf.spec.valued:
        return [leaf.flag if text == "true" else "--no-" + leaf.name]
    return [f"{leaf.flag}={text}"]


def value_at(obj: Any, leaf: Leaf) -> Any:
    for name in leaf.path:
        obj = getattr(obj, name)
    return obj


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HAKUBE_"):
            monkeypatch.delenv(key)


def argv_of(
    command: str, rest: list[str], leaf: Leaf | None = None, before: Sequence[str] = ()
) -> list[str]:
    """``hakube [BEFORE] COMMAND ... REST`` with the command's required flags (except
    ``leaf``'s) and operands added."""
    extra = [
        w
        for f, v in REQUIRED.get(command, {}).items()
        if leaf is None or f != leaf.flag
        for w in (f, v)
    ]
    if leaf is not None and leaf.flag in COMPANIONS:
        extra += COMPANIONS[leaf.flag]
    return [*before, *command.split(), *extra, *OPERANDS.get(command, []), *rest]


def settings_of(
    command: str, rest: Sequence[str] = (), leaf: Leaf | None = None, before: Sequence[str] = ()
) -> Any:
    """``hakube [BEFORE] COMMAND ... REST`` parsed (see :func:`argv_of`)."""
    return parse(argv_of(command, rest, leaf, before), PARSER)[2]


def numeric_leaf(command: str, cls: type) -> Leaf:
    flag = NUMERIC_LEAF.get(command)
    return next(x for x in leaves(cls) if x.kind in (int, float) and flag in (None, x.flag))


@pytest.mark.parametrize("command,cls", DAEMONS, ids=[d[0] for d in DAEMONS])
def test_every_setting_has_help_and_is_set_alike_by_flag_variable_and_file(
    command: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    for leaf in leaves(cls):
        assert leaf.help.strip(), f"hakube {command} {leaf.flag} has no help text"
        text = sample(leaf, command)
        by_flag = value_at(settings_of(command, flag_words(leaf, text), leaf), leaf)
        monkeypatch.setenv(leaf.env, text)
        by_env = value_at(settings_of(command, [], leaf), leaf)
        monkeypatch.delenv(leaf.env)
        config.write_text(yaml.safe_dump({leaf.key: text}))
        by_file = value_at(settings_of(command, [], leaf, ["--config", str(config)]), leaf)
        assert by_flag == by_env == by_file, f"{command} {leaf.flag}"
        assert by_flag != leaf.default, f"{command} {leaf.flag}: {text!r} left the default"


@pytest.mark.parametrize("command,cls", NUMERIC, ids=[d[0] for d in NUMERIC])
def test_a_flag_beats_the_variable_which_beats_the_file_which_beats_the_default(
    command: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = numeric_leaf(command, cls)
    d = leaf.default
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({leaf.key: d + 1}))
    with_file = ["--config", str(config)]
    assert value_at(settings_of(command), leaf) == d
    assert value_at(settings_of(command, before=with_file), leaf) == d + 1
    monkeypatch.setenv(leaf.env, str(d + 2))
    assert value_at(settings_of(command, before=with_file), leaf) == d + 2
    three = settings_of(command, [leaf.flag, str(d + 3)], before=with_file)
    assert value_at(three, leaf) == d + 3


@pytest.mark.parametrize("command,cls", NUMERIC, ids=[d[0] for d in NUMERIC])
def test_a_bad_value_is_one_line_naming_the_setting_and_status_2(
    command: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    leaf = numeric_leaf(command, cls)
    for source in ("flag", "env", "file"):
        argv = argv_of(command, [])
        if source == "flag":
            argv = argv_of(command, [leaf.flag, "many"])
        elif source == "env":
            monkeypatch.setenv(leaf.env, "many")
        else:
            (tmp_path / "c.yaml").write_text(f"{leaf.key}: many\n")
            argv = argv_of(command, [], before=["--config", str(tmp_path / "c.yaml")])
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and leaf.flag in err, err
        assert err.startswith(f"hakube {command}: {leaf.flag}"), err
        monkeypatch.delenv(leaf.env, raising=False)


def test_an_unknown_config_key_or_a_broken_rule_between_settings_is_refused(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "c.yaml").write_text("renew-deadlin: 2\n")
    assert main(["--config", str(tmp_path / "c.yaml"), "scheduler"]) == 2
    assert 'unknown setting "renew-deadlin"' in capsys.readouterr().err
    assert main(["scheduler", "--renew-deadline", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--renew-deadline 9.0" in err and "--lease-duration" in err


@pytest.mark.timeout(60)
def test_the_process_exits_2_with_one_line_for_a_bad_variable() -> None:
    env = {**os.environ, "HAKUBE_TTL": "-1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "hakube", "dns"], env=env, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 2
    assert proc.stderr == "hakube dns: --ttl (from HAKUBE_TTL): -1 is below the minimum 0\n"


def test_settings_objects_are_typed_dataclasses_not_namespaces() -> None:
    s = settings_of("controller-manager", ["--job-backoff-base", "2"])
    assert dataclasses.is_dataclass(s) and s.knobs.job_backoff_base == 2.0
    assert s.component.lease_name == "hakube-controller-manager"
    assert settings_of("scheduler").component.lease_name == "hakube-scheduler"


def test_docs_settings_md_is_current() -> None:
    want = reference(commands())
    assert DOC.read_text() == want, (
        "docs/settings.md is stale: python -m hakube.cli.settings_ref > docs/settings.md"
    )
    for _, cls in commands():
        for leaf in leaves(cls):
            assert f"`{leaf.flag}`" in want and f"`{leaf.env}`" in want


def test_a_tools_operands_come_only_from_its_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HAKUBE_FILE", "from-env.snap")
    with pytest.raises(SystemExit):  # argparse: the operand FILE is required
        parse(["snapshot", "inspect"], PARSER)
    assert "required: FILE" in capsys.readouterr().err
    assert settings_of("snapshot inspect").file == "backup.snap"
    assert main(["certs", "check-expiration"]) == 2
    err = capsys.readouterr().err
    assert err == "hakube certs check-expiration: missing required setting --pki-dir\n"
    monkeypatch.setenv("HAKUBE_PKI_DIR", "/etc/hakube/pki")
    assert parse(["certs", "check-expiration"], PARSER)[2].pki_dir == "/etc/hakube/pki"


def test_masters_for_certs_init_may_repeat_or_come_joined(capsys: Any) -> None:
    want = {"m1": ["10.0.0.1", "m1.lan"], "m2": ["10.0.0.2"]}
    repeated = ["--master", "m1=10.0.0.1,m1.lan", "--master", "m2=10.0.0.2"]
    assert settings_of("certs init", repeated).master == want
    assert settings_of("certs init", ["--master=m1=10.0.0.1,m1.lan,m2=10.0.0.2"]).master == want
    for bad in ("m1.lan", "m1=a,m1=b", "=10.0.0.1"):
        assert main(argv_of("certs init", ["--master", bad])) == 2
        err = capsys.readouterr().err
        assert err.startswith("hakube certs init: --master: ") and err.count("\n") == 1, err
