"""The playbooks pass ``ansible-playbook --syntax-check`` and Debian's ``ansible-lint`` at its
strictest profile, ``production`` (ansible/.ansible-lint).

Debian's ansible-lint runs against Debian's ansible-core (both from scripts/install/ansible.sh):
given the dev extras' newer ansible on PATH it refuses to run (CLI and module versions differ),
so it gets a PATH of the system's directories only.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.ansible.tools import PLAYBOOK_DIR, ansible_env, ansible_tool
from tests.conftest import require

PLAYBOOKS = sorted(p.name for p in PLAYBOOK_DIR.glob("*.yml") if p.name != "inventory.example.yml")
LINT = Path("/usr/bin/ansible-lint")


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str, tmp_path: Path) -> None:
    tool = ansible_tool("ansible-playbook")
    if tool is None:
        require("ansible-playbook is not installed (pip install -e '.[dev]')")
    assert tool is not None
    argv = [tool, "--syntax-check", "-i", str(PLAYBOOK_DIR / "inventory.example.yml"), playbook]
    done = subprocess.run(
        argv,
        cwd=PLAYBOOK_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_roles_and_playbooks_pass_ansible_lint_production_profile(tmp_path: Path) -> None:
    if not LINT.exists():
        require("ansible-lint is not installed (scripts/install/ansible.sh)")
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    done = subprocess.run(
        [str(LINT), "--offline", "--profile", "production"],
        cwd=PLAYBOOK_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "Passed with production profile" in out, out[-4000:]
