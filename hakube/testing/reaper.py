"""No process of a test session outlives it, even when the test runner is SIGKILLed.

The harness starts masters, agents, containerd, sshd, keepalived, dnsmasq... each in a session
of its own (a Ctrl-C in the terminal must reach only the runner, which stops them in order).
The price: when the runner dies without running its teardown (SIGKILL by a CI timeout, a
second Ctrl-C), nothing stops them. ``PR_SET_PDEATHSIG`` does not fit: it fires when the
*thread* that forked the child ends (harness threads spawn too), it reaches only direct
children, and ``hakube up`` -- product code whose masters must outlive a restarted supervisor
thread -- spawns through the same function.

So the session is marked instead, and a watchdog does the killing:

* ``start`` puts ``PYTEST_REAPER_TOKEN=<random>`` into the runner's environment; every process
  the session starts inherits it, whatever session, process group or network namespace it is
  in (a nested session appends its own; the variable is not ``HAKUBE_*``: harnesses that strip
  those for a "clean" environment keep it).
* It starts this module as a watchdog process (in its own session, without the token) that
  polls its parent. When the parent is gone it kills, with SIGKILL, the *session's processes*:
  every process carrying the token, every process in a network namespace (other than the
  watchdog's own) where such a process lives -- Ansible-deployed services are started over SSH
  with ``env -i`` in the test hosts' namespaces -- and every descendant of those (containers
  under their shims), repeating until none is left.
* At a normal end the runner calls ``leftovers`` (what of the session still runs after every
  fixture is torn down: a cleanup bug), kills them, and stops the watchdog.

Product code never imports this module.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

ENV = "PYTEST_REAPER_TOKEN"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int
    """Start time in clock ticks since boot (with the pid, it names one process: pids get
    reused)."""
    netns: str
    marked: bool
    cmd: str


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat(pid: int) -> list[bytes]:
    """/proc/PID/stat's fields after the command name: [0] state, [1] ppid, [19] start time."""
    return _read(f"/proc/{pid}/stat").rpartition(b")")[2].split()


def _marked(environ: bytes, prefix: bytes, token: bytes) -> bool:
    for var in environ.split(b"\0"):
        if var.startswith(prefix):
            return token in var[len(prefix) :].split(b":")
    return False


def scan(token: str) -> dict[int, Proc]:
    """Every live (not zombie) process, and whether its environment carries ``token``."""
    prefix = f"{ENV}=".encode()
    out: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if len(fields) < 20 or fields[0] in (b"Z", b"X"):
            continue
        try:
            netns = os.readlink(f"/proc/{name}/ns/net")
        except OSError:
            netns = ""
        cmd = _read(f"/proc/{name}/cmdline").replace(b"\0", b" ").strip()
        out[int(name)] = Proc(
            pid=int(name),
            ppid=int(fields[1]),
            start=int(fields[19]),
            netns=netns,
            marked=_marked(_read(f"/proc/{name}/environ"), prefix, token.encode()),
            cmd=cmd.decode(errors="replace")[:200],
        )
    return out


def session_processes(token: str, exclude: tuple[int, ...] = ()) -> list[Proc]:
    """The processes of the session marked by ``token``: see the module docstring."""
    procs = scan(token)
    me = os.getpid()
    own_ns = procs[me].netns if me in procs else ""
    found = {p.pid for p in procs.values() if p.marked}
    namespaces = {procs[pid].netns for pid in found} - {own_ns, ""}
    found |= {p.pid for p in procs.values() if p.netns in namespaces}
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found -= {me, *exclude}
    return sorted((procs[pid] for pid in found), key=lambda p: p.pid)


def kill(procs: list[Proc]) -> None:
    """SIGKILL each process that is still the one scanned (same pid and start time)."""
    for p in procs:
        fields = _stat(p.pid)
        if len(fields) > 19 and int(fields[19]) == p.start:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass


def reap(token: str, exclude: tuple[int, ...] = (), timeout: float = 20.0) -> list[Proc]:
    """Kill the session's processes until none is left (a dying parent may have forked just
    before); what was killed."""
    killed: dict[int, Proc] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = session_processes(token, exclude)
        if not left:
            break
        killed.update({p.pid: p for p in left})
        kill(left)
        time.sleep(0.05)
    return list(killed.values())


@dataclass
class Session:
    """A marked test session and its watchdog (see ``start``)."""

    token: str
    watchdog: subprocess.Popen[bytes]

    def leftovers(self) -> list[Proc]:
        """The session's processes still running (call after every fixture is torn down)."""
        return session_processes(self.token, exclude=(self.watchdog.pid,))

    def close(self) -> None:
        """Stop the watchdog without it killing anything (a normal end of the session)."""
        if self.watchdog.poll() is None:
            self.watchdog.terminate()
            self.watchdog.wait(10)


def start() -> Session:
    """Mark this process's future children with a fresh token and start their watchdog."""
    token = secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "hakube.testing.reaper", "--parent", str(os.getpid()), token],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C meant for the runner must not end it
    )
    # A run inside a run (a test of the harness) keeps the outer tokens: its processes belong
    # to both sessions.
    outer = os.environ.get(ENV)
    os.environ[ENV] = f"{outer}:{token}" if outer else token
    return Session(token, watchdog)


def main() -> None:
    ap = argparse.ArgumentParser(description="Kill a test session's processes when it dies.")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("token")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the session ended normally
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.getppid() == args.parent:
        time.sleep(0.2)
    killed = reap(args.token)
    if killed:
        print(
            f"test session (pid {args.parent}) died: killed {len(killed)} of its processes: "
            + ", ".join(f"{p.pid} {p.cmd[:60]!r}" for p in killed[:20]),
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    main()
