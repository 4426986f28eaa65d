"""The systemd unit the playbook installs in production, checked by systemd itself.

The deployment test runs the process mode (no systemd as PID 1 on the test machine); this renders
the unit template through Ansible, as the role does, and has ``systemd-analyze verify`` read it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.ansible.test_ansible_deploy import PLAYBOOK_DIR, ansible_env
from tests.ansible.tools import ansible_tool
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
