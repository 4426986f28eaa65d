"""What the Ansible tests share: finding Ansible's commands, its environment, running a playbook
from the control namespace over SSH, reading its recap."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.ansible.sshlab import SshLab

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = REPO / "ansible"
# Ansible's modules need only the standard library. Debian's python3 starts several times faster
# than a Python whose site-packages hold the dev tools, and every task of every host starts one.
MODULE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def ansible_tool(name: str) -> str | None:
    """``name`` (ansible-playbook, ansible) installed beside this Python -- where
    ``pip install -e '.[dev]'`` puts it, even when that directory is not on PATH -- else on
    PATH; None if neither has it."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def ansible_env(workdir: Path) -> dict[str, str]:
    """Ansible's environment for a test: this tree's ansible.cfg, its state kept in
    ``workdir``, nothing inherited that would change what hakube or Ansible do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAKUBE_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_CONFIG=str(PLAYBOOK_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(workdir / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    return env


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {"m1": {"ok": 20, "changed": 0, ...}}."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def run_playbook(
    lab: SshLab,
    control_dir: Path,
    workdir: Path,
    inventory: Path,
    playbook: str,
    *args: str,
    extra_vars: dict[str, object] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook`` from the lab's control namespace, over SSH with the lab's key and
    known_hosts (``control_dir``: a short directory for ssh's multiplexing sockets); its output
    is also appended to ``workdir``/playbook.log."""
    tool = ansible_tool("ansible-playbook") or "ansible-playbook"
    argv = [tool, "-i", str(inventory), str(PLAYBOOK_DIR / playbook), *args]
    argv += ["-e", json.dumps(extra_vars)] if extra_vars else []
    # ip netns exec keeps the caller's directory; the playbook's is where ansible.cfg is.
    argv = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(PLAYBOOK_DIR), *argv]
    env = ansible_env(workdir)
    env["ANSIBLE_SSH_ARGS"] = lab.ssh_args(control_dir)
    proc = lab.control.run(argv, timeout=timeout, check=False, env=env)
    with (workdir / "playbook.log").open("a") as log:
        log.write(proc.stdout + proc.stderr)
    return proc
