"""What the Ansible tests share: finding Ansible's commands, its environment, running a playbook
from the control namespace over SSH, reading its recap."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.ansible.sshlab import SshLab

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = REPO / "ansible"
# Ansible's modules need only the standard library. Debian's python3 starts several times faster
# than a Python whose site-packages hold the dev tools, and every task of every host starts one.
MODULE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# Per-task durations of every playbook run, in the run's workdir (JSON lines).
TASK_TIMES = "task-times.jsonl"


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
    # Where the time goes: each task's duration (callback_plugins/task_times.py).
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(Path(__file__).parent / "callback_plugins")
    env["ANSIBLE_CALLBACKS_ENABLED"] = "task_times"
    env["TASK_TIMES_FILE"] = str(workdir / TASK_TIMES)
    proc = lab.control.run(argv, timeout=timeout, check=False, env=env)
    with (workdir / "playbook.log").open("a") as log:
        log.write(proc.stdout + proc.stderr)
    return proc


def task_time_summary(workdir: Path, top: int = 15) -> str:
    """The playbooks' wall time and the ``top`` tasks by total time over every run in
    ``workdir`` (from the task_times callback), as lines to print."""
    path = workdir / TASK_TIMES
    if not path.exists():
        return "(no task times)"
    per_task: dict[str, float] = {}
    per_playbook: dict[str, float] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        key = f"{rec['playbook']}: {rec['task']}"
        per_task[key] = per_task.get(key, 0.0) + rec["seconds"]
        per_playbook[rec["playbook"]] = per_playbook.get(rec["playbook"], 0.0) + rec["seconds"]
    lines = [f"{name}: {secs:.1f} s in tasks" for name, secs in sorted(per_playbook.items())]
    ranked = sorted(per_task.items(), key=lambda kv: -kv[1])[:top]
    lines += [f"  {secs:6.1f} s  {name}" for name, secs in ranked]
    return "\n".join(lines)


WHEEL_CACHE = Path(tempfile.gettempdir()) / "hakube-test-wheels"


def hakube_wheel() -> Path:
    """A wheel of this tree, as the role would build it on a controller (``pip wheel``), kept
    by the content of what goes into it (the package, pyproject.toml, README.md): an unchanged
    tree reuses the wheel an earlier test run built instead of spending half a minute on it."""
    digest = hashlib.sha256()
    inputs = [REPO / "pyproject.toml", REPO / "README.md"]
    inputs += sorted(
        p for p in (REPO / "hakube").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in inputs:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    out = WHEEL_CACHE / digest.hexdigest()[:32]
    found = sorted(out.glob("hakube-*.whl"))
    if found:
        return found[0]
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="build-", dir=WHEEL_CACHE))
    try:
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w"]
        subprocess.run(
            [*pip_wheel, str(building), str(REPO)],
            check=True,
            timeout=300,
        )
        try:
            building.rename(out)  # whole, or not at all: another run may have won the race
        except OSError:
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return next(out.glob("hakube-*.whl"))
