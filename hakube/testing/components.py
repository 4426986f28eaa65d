"""Leader-elected components (``hakube controller-manager``, ``hakube scheduler``) as processes.

Short election timings by default so that failover tests are quick; each process logs to its own
file. The processes are children of a ``hakube.local.supervisor.Supervisor`` that never restarts
them (tests kill components on purpose and watch the others take over), and ``stop_all`` ends
exactly the processes started here. Each component runs with its own identity
(``system:kube-scheduler``, ``system:kube-controller-manager``: the test CA's user
certificates), as in a real cluster, so the tests exercise its least-privilege role.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field

from hakube.client.config import ENV_CONFIG
from hakube.local import procs
from hakube.local.cluster import write_config
from hakube.local.supervisor import RestartPolicy, Supervisor
from hakube.pki.layout import USERS, Pki
from hakube.testing import pki as testpki

FAST_ELECTION = ["--lease-duration", "2", "--renew-deadline", "1.5", "--retry-period", "0.2"]
FAST_POD_BACKOFF = ["--pod-initial-backoff", "0.2", "--pod-max-backoff", "1"]


@dataclass
class ComponentProcs:
    """Processes of one component, e.g. two controller-managers competing for one lease."""

    command: str
    servers: list[str]
    log_dir: str
    extra_args: list[str] = field(default_factory=list)
    log_level: str = "debug"
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(RestartPolicy(restart=False)))
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
        old = self.supervisor.children.pop(identity, None)  # a start after a kill
        if old is not None and old.alive:
            self.supervisor.children[identity] = old
            raise ValueError(f"{self.command} {identity} is running already")
        child = self.supervisor.spawn(
            identity, self.command, argv, self._log_path(identity), env=self._env()
        )
        assert child.proc is not None
        return child.proc

    def kill(self, identity: str, sig: int = signal.SIGKILL) -> None:
        self.supervisor.kill(identity, sig)

    def _log_path(self, identity: str) -> str:
        return os.path.join(self.log_dir, f"{self.command}-{identity}.log")

    def log(self, identity: str) -> str:
        with open(self._log_path(identity), "rb") as f:
            return f.read().decode(errors="replace")

    def stop_all(self) -> None:
        self.supervisor.stop()

    def __enter__(self) -> ComponentProcs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def scheduler_procs(servers: list[str], log_dir: str) -> ComponentProcs:
    """Scheduler processes that retry unschedulable pods quickly (none started yet)."""
    return ComponentProcs("scheduler", servers, log_dir, extra_args=FAST_POD_BACKOFF)
