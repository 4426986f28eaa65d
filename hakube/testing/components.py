"""Leader-elected components (``hakube controller-manager``, ``hakube scheduler``) as processes.

Short election timings by default so that failover tests are quick; each process logs to its own
file, and ``stop_all`` ends exactly the processes started here. Each component runs with its own
identity (``system:kube-scheduler``, ``system:kube-controller-manager``: the test CA's user
certificates), as in a real cluster, so the tests exercise its least-privilege role.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field

from hakube import procs
from hakube.client.config import ENV_CONFIG
from hakube.local.cluster import write_config
from hakube.pki.layout import USERS, Pki
from hakube.testing import pki as testpki

FAST_ELECTION = ["--lease-duration", "2", "--renew-deadline", "1.5", "--retry-period", "0.2"]


@dataclass
class ComponentProcs:
    """Processes of one component, e.g. two controller-managers competing for one lease."""

    command: str
    servers: list[str]
    log_dir: str
    extra_args: list[str] = field(default_factory=list)
    log_level: str = "debug"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pki: Pki | None = None
    """Whose certificate the component uses (default: the shared test CA's, for its command)."""

    def _env(self) -> dict[str, str] | None:
        if self.command not in USERS:
            return None
        conf = os.path.join(self.log_dir, f"{self.command}.conf")
        write_config(conf, self.pki or testpki.shared(), self.servers, user=self.command)
        return dict(os.environ, **{ENV_CONFIG: conf})

    def start(self, identity: str, *args: str) -> subprocess.Popen[bytes]:
        argv = procs.hakube_argv(
            "--log-level",
            self.log_level,
            self.command,
            "--servers",
            ",".join(self.servers),
            "--identity",
            identity,
            *FAST_ELECTION,
            *self.extra_args,
            *args,
        )
        proc = procs.spawn(argv, os.path.join(self.log_dir, f"{self.command}-{identity}.log"),
                           env=self._env())
        self.procs[identity] = proc
        return proc

    def kill(self, identity: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[identity]
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(15)

    def log(self, identity: str) -> str:
        with open(os.path.join(self.log_dir, f"{self.command}-{identity}.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop_all(self) -> None:
        procs.stop(self.procs.values())

    def __enter__(self) -> ComponentProcs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
