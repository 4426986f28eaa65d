"""The components ``hakube up`` runs next to its masters.

One ``hakube scheduler`` and one ``hakube controller-manager``, each its own process (so they
fail, and are restarted, on their own: they are children of ``hakube up``'s supervisor, kind
``component``), pointed at every master and logging to ``scheduler.log`` /
``controller-manager.log`` in the data dir. Being leader-elected, a second ``hakube up`` or a
hand-started component on the same cluster simply stands by. Each runs as its own identity
(``system:kube-scheduler``, ``system:kube-controller-manager``), not as the admin:
``<name>.conf`` in the data dir names its certificate from the cluster's PKI.

With real containers (``--runtime containerd``) also one ``hakube proxy`` (``system:kube-proxy``)
for this machine -- one per host, however many agents share it -- programming the host's
nftables table ``hakube-proxy`` so that Services route (``--proxy-mode none``: not).
"""

from __future__ import annotations

import os

from hakube.client.config import ENV_CONFIG, ClientConfig, tls_settings, write_client_config
from hakube.local import procs
from hakube.local.supervisor import Supervisor
from hakube.pki.layout import Pki

COMPONENTS = ("scheduler", "controller-manager")
PROXY = "proxy"
KIND = "component"


class UpComponents:
    def __init__(
        self,
        data_dir: str,
        endpoints: list[str],
        supervisor: Supervisor,
        *,
        pki: Pki | None = None,
        proxy_args: list[str] | None = None,
        metrics: dict[str, str] | None = None,
    ) -> None:
        """``pki``: the cluster's PKI directory, for each component's own client config
        (without it the components use the caller's $HAKUBE_CONFIG). ``proxy_args``: also run
        ``hakube proxy`` with these extra flags (None: no proxy). ``metrics``: component name
        -> the loopback HOST:PORT its /metrics is served on."""
        self.proxy_args = proxy_args
        self.metrics = dict(metrics or {})
        self.data_dir = data_dir
        self.pki = pki
        self.endpoints = endpoints
        self.supervisor = supervisor

    def log_path(self, name: str) -> str:
        return os.path.join(self.data_dir, f"{name}.log")

    def start(self) -> None:
        names = COMPONENTS + ((PROXY,) if self.proxy_args is not None else ())
        for name in names:
            argv = procs.hakube_argv(name, "--servers", ",".join(self.endpoints))
            if name == PROXY:
                argv += list(self.proxy_args or [])
            else:  # leader-elected: a holder identity of its own
                argv += ["--identity", f"up-{os.getpid()}-{name}"]
            if name in self.metrics:
                argv += ["--metrics-listen", self.metrics[name]]
            env = None
            if self.pki is not None:
                conf = os.path.join(self.data_dir, f"{name}.conf")
                write_client_config(
                    conf,
                    ClientConfig(
                        servers=list(self.endpoints), tls=tls_settings(self.pki.user_tls(name))
                    ),
                )
                env = dict(os.environ, **{ENV_CONFIG: conf})
            self.supervisor.spawn(
                name,
                KIND,
                argv,
                self.log_path(name),
                env=env,
                pid_file=os.path.join(self.data_dir, f"{name}.pid"),
            )

    def report(self) -> list[str]:
        return [
            f"  {c.name}  pid {c.pid}  log {c.log_path}"
            + (f"  metrics http://{self.metrics[c.name]}/metrics" if c.name in self.metrics else "")
            for c in self.supervisor.of_kind(KIND)
        ]

    def stop(self) -> None:
        """SIGTERM (they release their leases), then wait; kill what does not stop."""
        self.supervisor.stop([KIND])
