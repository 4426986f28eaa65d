"""The systemd units the playbook installs in production, checked by systemd itself.

The deployment test runs the process mode (no systemd as PID 1 on the test machine); this renders
the unit template through Ansible, as the role does, and has ``systemd-analyze verify`` read it;
with the roles' own hardening defaults, ``systemd-analyze security`` rates the sandbox.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.ansible.tools import PLAYBOOK_DIR, ansible_env, ansible_tool
from tests.conftest import require

TEMPLATE = PLAYBOOK_DIR / "roles/hakube_install/templates/service.unit.j2"


def test_the_master_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    ansible = ansible_tool("ansible")
    if ansible is None or shutil.which("systemd-analyze") is None:
        require("ansible (pip install -e '.[dev]') or systemd-analyze (systemd) is missing")
        return
    unit = tmp_path / "hakube-master.service"
    hakube = Path(sys.prefix) / "bin/hakube"  # any executable: verify checks that it exists
    extra = {
        "svc_name": "hakube-master",
        "svc_description": "hakube master m1 (store and API server)",
        "svc_argv": [str(hakube), "--config", "/etc/hakube/master.yaml", "master"],
        "hakube_stop_timeout": 30,
    }
    argv = [str(ansible), "localhost", "-c", "local", "-m", "ansible.builtin.template"]
    argv += ["-a", f"src={TEMPLATE} dest={unit}", "-e", json.dumps(extra)]
    done = subprocess.run(argv, env=ansible_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ExecStart={hakube} --config /etc/hakube/master.yaml master" in unit.read_text()
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")


def _render(tmp_path: Path, name: str, roles: list[str], extra: dict[str, object]) -> Path:
    """The unit of ``name`` rendered by Ansible with ``roles``' defaults (as the play has them)
    and ``extra`` on top."""
    ansible = ansible_tool("ansible")
    if ansible is None or shutil.which("systemd-analyze") is None:
        require("ansible (pip install -e '.[dev]') or systemd-analyze (systemd) is missing")
    assert ansible is not None
    variables: dict[str, object] = {}
    for role in roles:
        variables.update(
            yaml.safe_load((PLAYBOOK_DIR / f"roles/{role}/defaults/main.yml").read_text())
        )
    variables.update(extra)
    vars_file = tmp_path / f"{name}-vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    unit = tmp_path / f"{name}.service"
    argv = [str(ansible), "localhost", "-c", "local", "-m", "ansible.builtin.template"]
    argv += ["-a", f"src={TEMPLATE} dest={unit}", "-e", f"@{vars_file}"]
    done = subprocess.run(argv, env=ansible_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return unit


def _exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_the_master_runs_as_its_own_user_in_a_sandbox_systemd_accepts(tmp_path: Path) -> None:
    hakube = Path(sys.prefix) / "bin/hakube"
    unit = _render(
        tmp_path,
        "hakube-master",
        ["hakube_install", "hakube_master"],
        {
            "svc_name": "hakube-master",
            "svc_description": "hakube master m1",
            "svc_argv": [str(hakube), "master"],
            "svc_user": "{{ hakube_master_user }}",
            "svc_hardening": "{{ hakube_master_hardening }}",
            "hakube_master_user": "hakube",
        },
    )
    text = unit.read_text()
    for line in (
        "User=hakube",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/hakube/master /etc/hakube/pki",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "UMask=0077",
    ):
        assert f"\n{line}\n" in text, line
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    assert _exposure(unit) <= 2.5  # "OK" in systemd's scale (root, unsandboxed: 9.6)


def test_the_agent_stays_root_in_the_host_mount_namespace_with_what_hardening_fits(
    tmp_path: Path,
) -> None:
    hakube = Path(sys.prefix) / "bin/hakube"
    unit = _render(
        tmp_path,
        "hakube-agent",
        ["hakube_install", "hakube_agent"],
        {
            "svc_name": "hakube-agent",
            "svc_description": "hakube node agent n1",
            "svc_argv": [str(hakube), "agent"],
            "svc_hardening": "{{ hakube_agent_hardening }}",
        },
    )
    text = unit.read_text()
    assert "\nNoNewPrivileges=yes\n" in text and "\nRestrictSUIDSGID=yes\n" in text
    for namespacing in ("User=", "ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths"):
        assert namespacing not in text  # the agent's mounts must stay visible to containerd
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")


def test_the_proxy_and_dns_units_keep_one_capability_each_and_name_their_identity(
    tmp_path: Path,
) -> None:
    """Both run as root (their key files are root's) but keep a single capability: the proxy
    CAP_NET_ADMIN for nftables, the DNS CAP_NET_BIND_SERVICE for port 53; each finds its own
    client config (its identity) through HAKUBE_CONFIG."""
    hakube = Path(sys.prefix) / "bin/hakube"
    for name, role, capability in (
        ("proxy", "hakube_proxy", "CAP_NET_ADMIN"),
        ("dns", "hakube_dns", "CAP_NET_BIND_SERVICE"),
    ):
        unit = _render(
            tmp_path,
            f"hakube-{name}",
            ["hakube_install", role],
            {
                "svc_name": f"hakube-{name}",
                "svc_description": f"hakube {name}",
                "svc_argv": [str(hakube), "--config", f"/etc/hakube/{name}.yaml", name],
                "svc_env": {"HAKUBE_CONFIG": f"{{{{ hakube_{name}_pki_dir }}}}/config"},
                "svc_hardening": f"{{{{ hakube_{name}_hardening }}}}",
            },
        )
        text = unit.read_text()
        for line in (
            f'Environment="HAKUBE_CONFIG=/etc/hakube/{name}/config"',
            f"CapabilityBoundingSet={capability}",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "UMask=0077",
        ):
            assert f"\n{line}\n" in text, (name, line)
        assert "\nUser=" not in text
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert (verify.returncode, verify.stdout + verify.stderr) == (0, ""), name
        assert _exposure(unit) <= 5.0, name  # root, but one capability and a read-only system
