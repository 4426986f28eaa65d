"""The leader-elected components ``hakube up`` runs next to its masters.

One ``hakube scheduler`` and one ``hakube controller-manager``, each its own process (so they
fail, and are restarted, on their own), pointed at every master and logging to
``scheduler.log`` / ``controller-manager.log`` in the data dir. Being leader-elected, a second
``hakube up`` or a hand-started component on the same cluster simply stands by. Each runs as
its own identity (``system:kube-scheduler``, ``system:kube-controller-manager``), not as the
admin: ``<name>.conf`` in the data dir names its certificate from the cluster's PKI.
"""

from __future__ import annotations

import os
import subprocess
import time

from hakube import procs
from hakube.client.config import ENV_CONFIG, ClientConfig, tls_settings, write_client_config
from hakube.pki.layout import Pki

COMPONENTS = ("scheduler", "controller-manager")


class UpComponents:
    def __init__(
        self,
        data_dir: str,
        endpoints: list[str],
        *,
        restart_delay: float = 5.0,
        restart: bool = True,
        pki: Pki | None = None,
    ) -> None:
        """``pki``: the cluster's PKI directory, for each component's own client config
        (without it the components use the caller's $HAKUBE_CONFIG)."""
        self.data_dir = data_dir
        self.pki = pki
        self.endpoints = endpoints
        self.restart_delay = restart_delay
        self.restart = restart
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._restart_at: dict[str, float] = {}

    def log_path(self, name: str) -> str:
        return os.path.join(self.data_dir, f"{name}.log")

    def _start(self, name: str) -> None:
        argv = procs.hakube_argv(
            name, "--servers", ",".join(self.endpoints), "--identity", f"up-{os.getpid()}-{name}"
        )
        env = None
        if self.pki is not None:
            conf = os.path.join(self.data_dir, f"{name}.conf")
            write_client_config(conf, ClientConfig(servers=list(self.endpoints),
                                                   tls=tls_settings(self.pki.user_tls(name))))
            env = dict(os.environ, **{ENV_CONFIG: conf})
        self.procs[name] = procs.spawn(argv, self.log_path(name), env=env)

    def start(self) -> None:
        for name in COMPONENTS:
            self._start(name)

    def report(self) -> list[str]:
        return [
            f"  {name}  pid {p.pid}  log {self.log_path(name)}" for name, p in self.procs.items()
        ]

    def supervise(self) -> list[str]:
        """Restart components that died (after a pause); lines to print."""
        out = []
        now = time.monotonic()
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                continue
            if name not in self._restart_at:
                if not self.restart:
                    continue
                self._restart_at[name] = now + self.restart_delay
                out.append(
                    f"hakube up: {name} stopped (exit status {p.returncode}); "
                    f"restarting in {self.restart_delay:g}s - see {self.log_path(name)}"
                )
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                self._start(name)
                out.append(f"hakube up: {name} started again (pid {self.procs[name].pid})")
        return out

    def stop(self) -> None:
        """SIGTERM (they release their leases), then wait; kill what does not stop."""
        procs.stop(self.procs.values())
