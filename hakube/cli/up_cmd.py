"""``hakube up``: a whole HA control plane on this machine, in the foreground.

It runs N masters as separate processes on 127.0.0.1 (so killing one is a real failure), writes
the client config so ``hakubectl`` works at once, prints where everything listens, supervises
its masters, node agents, scheduler and controller-manager (one that dies is started again
after a pause that doubles with each death in a row, like systemd's ``Restart=on-failure``,
unless ``--no-restart``; ``hakube.local.supervisor``) and stops them all on Ctrl-C or SIGTERM.

Everything lives in the data dir, and the ports are chosen once and written to
``cluster.yaml`` there: starting ``hakube up`` again on the same data dir brings back the same
cluster, on the same ports, with its state. ``--nodes M`` also runs M node agents
(``hakube.local.agents``), with the simulated runtime unless ``--runtime containerd``.

Files in the data dir: ``cluster.yaml`` (ports), ``up.lock`` (one ``hakube up`` per dir),
``up.pid``, ``mN/`` (each master's Raft journal and dumps), ``mN.log``, ``mN.pid`` (and the
same ``.log``/``.pid`` pair for ``node-N``, ``scheduler``, ``controller-manager``,
``dns`` (the cluster DNS whose address ``dns-listen`` keeps) and, with ``--runtime
containerd``, ``proxy``), ``client-config`` (a copy of the client config), ``prometheus.yml``
(a Prometheus scrape config for the /metrics of every process it started;
``hakube.local.monitoring``), ``pki/`` (the cluster's own CA, the masters' and the users'
certificates; ``hakube certs`` works on it), ``node-N/pki`` (each node's certificate, from
joining with a bootstrap token that ``hakube up`` creates at each start).
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from hakube.apiserver.encryption import new_config
from hakube.cli.token_cmd import create_token
from hakube.client import HakubeError
from hakube.client.config import (
    ENV_CONFIG,
    ClientConfig,
    config_path,
    tls_settings,
    write_client_config,
)
from hakube.controllers.settings import DEFAULT_CLUSTER_CIDR
from hakube.cri.client import DEFAULT_ENDPOINT
from hakube.lifecycle import StartupError, run_until_signal
from hakube.local.agents import DEFAULT_CNI_CONF_DIR, LocalAgents
from hakube.local.cluster import LocalCluster, MasterProc, free_ports
from hakube.local.components import COMPONENTS, UpComponents
from hakube.local.dns import DnsAddress, LocalDns, ensure_kube_dns, listen_address
from hakube.local.monitoring import (
    JOBS,
    Target,
    metrics_addresses,
    prometheus_config,
    write_prometheus_config,
)
from hakube.local.supervisor import RestartPolicy, Supervisor
from hakube.pki import certs, files
from hakube.pki.layout import Pki, PkiError
from hakube.settings import add_flags, setting
from hakube.store.datadir import write_private

DEFAULT_DATA_DIR = "~/.hakube/cluster"
DEFAULT_CLIENT_CONFIG = "~/.hakube/config"
STATE_FILE = "cluster.yaml"


class UpError(Exception):
    """Why the cluster cannot be started; printed as one line."""


def _dns_listen(text: str) -> None:
    ip, _, port = text.rpartition(":")
    if text and (not ip or not port.isdigit()):
        raise ValueError(f"{text!r}: expected IP:PORT")


@dataclass(frozen=True)
class UpSettings:
    """``hakube up``: how many masters and nodes, where their state lives, what else runs."""

    masters: int = 3
    """Number of masters (1, 3, 5 or 7)."""
    nodes: int = 2
    """Number of node agents (hakube agent processes node-1..node-N)."""
    data_dir: str = setting(DEFAULT_DATA_DIR, metavar="DIR")
    """Where state, logs and ports are kept."""
    runtime: str = setting("simulated", choices=("simulated", "containerd"))
    """Container runtime for the node agents."""
    cri_endpoint: str = setting(DEFAULT_ENDPOINT, metavar="ENDPOINT")
    """With --runtime containerd: its CRI socket."""
    cni_conf_dir: str = setting(DEFAULT_CNI_CONF_DIR, metavar="DIR")
    """With --runtime containerd: the directory its CRI plugin reads CNI configs from (its cni
    conf_dir), where node-1 writes the pod network's."""
    client_config: str = setting("", metavar="FILE")
    """Client config to write for hakubectl (empty: where hakubectl looks, $HAKUBE_CONFIG or
    ~/.hakube/config)."""
    base_port: int = 0
    """First of the ports to use on a new data dir (API ports, then Raft, then metrics, N
    each); 0: any free ports."""
    no_restart: bool = False
    """Leave a master, agent or component that dies down instead of starting it again."""
    restart_delay: float = setting(5.0, minimum=0)
    """Seconds before a dead process is started again (doubling with each death in a row, up
    to 60)."""
    proxy_mode: str = setting("nftables", choices=("nftables", "none"))
    """With --runtime containerd, run hakube proxy (Services through this host's nftables
    table hakube-proxy; needs root) or not."""
    no_components: bool = False
    """Do not start the scheduler, the controller-manager (and the proxy)."""
    no_dns: bool = False
    """Do not start cluster DNS (hakube dns) nor create the kube-dns Service."""
    dns_listen: str = setting("", check=_dns_listen, metavar="IP:PORT")
    """IP:PORT for cluster DNS (empty: a loopback port with the simulated runtime, the host's
    address port 53 with containerd, where pods reach it via 10.96.0.10)."""

    def validate(self) -> None:
        if self.nodes < 0:
            raise ValueError(f"--nodes {self.nodes}: must be 0 or more")
        if self.masters not in (1, 3, 5, 7):
            raise ValueError(
                f"--masters {self.masters}: use 1, 3, 5 or 7 (an odd number: an even "
                "one tolerates no more failures than the odd number below it)"
            )
        if self.base_port and not 1024 <= self.base_port <= 65535 - 3 * self.masters:
            raise ValueError(
                f"--base-port {self.base_port}: must leave room for {3 * self.masters} "
                "ports below 65536 and be at least 1024"
            )


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[UpSettings], int]]:
    p = sub.add_parser(
        "up",
        help="run a local HA cluster in the foreground",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_flags(p, UpSettings)
    return {"up": run}


# -- ports and state ---------------------------------------------------------------------------


def _choose_ports(n: int, base: int) -> list[dict[str, str]]:
    ports = list(range(base, base + 4 * n)) if base else free_ports(4 * n)
    return [
        {
            "name": f"m{i + 1}",
            "api": f"127.0.0.1:{ports[i]}",
            "raft": f"127.0.0.1:{ports[n + i]}",
            "metrics": f"127.0.0.1:{ports[2 * n + i]}",
            "k8s_api": f"127.0.0.1:{ports[3 * n + i]}",
        }
        for i in range(n)
    ]


def load_or_create_state(data_dir: str, masters: int, base_port: int) -> list[dict[str, str]]:
    """The masters' ports: as recorded in the data dir, or chosen now and recorded."""
    path = os.path.join(data_dir, STATE_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                state = yaml.safe_load(f) or {}
            recorded = [
                {k: str(m[k]) for k in ("name", "api", "raft", "metrics", "k8s_api") if k in m}
                for m in state["masters"]
            ]
            for k in ("name", "api", "raft", "metrics"):
                if any(k not in r for r in recorded):
                    raise KeyError(k)
            # Data dirs from before the Kubernetes REST API: its port is chosen now (and
            # recorded below, so later runs keep it).
            missing = [r for r in recorded if "k8s_api" not in r]
            for r, port in zip(missing, free_ports(len(missing)), strict=True):
                r["k8s_api"] = f"127.0.0.1:{port}"
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise UpError(
                f"{path} is damaged ({exc}); move the data dir away to start afresh"
            ) from exc
        if len(recorded) != masters:
            raise UpError(
                f"{data_dir} holds a {len(recorded)}-master cluster; run with "
                f"--masters {len(recorded)}, or use another --data-dir"
            )
        if missing:
            _record(path, recorded)
        return recorded
    chosen = _choose_ports(masters, base_port)
    _record(path, chosen)
    return chosen


def _record(path: str, chosen: list[dict[str, str]]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# Ports of this cluster, chosen on its first start; hakube up reuses them.\n")
        yaml.safe_dump({"masters": chosen}, f, sort_keys=False)
    os.replace(tmp, path)


def _port_free(addr: str) -> bool:
    host, _, port = addr.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def _stop_leftovers(data_dir: str, masters: list[dict[str, str]]) -> None:
    """Masters, agents and the DNS of an earlier ``hakube up`` on this dir that outlived it (it
    was SIGKILLed): stop them, after checking by their command line that they are ours."""
    names = [m["name"] for m in masters] + sorted(
        f[:-4]
        for f in os.listdir(data_dir)
        if (f.startswith("node-") and f.endswith(".pid")) or f == "dns.pid"
    )
    for name in names:
        pid_file = os.path.join(data_dir, f"{name}.pid")
        try:
            with open(pid_file) as pf:
                pid = int(pf.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if "hakube" in cmdline and os.path.join(data_dir, name) in cmdline:
            print(f"stopping leftover {name} (pid {pid}) of an earlier hakube up", flush=True)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.1)


# -- run ---------------------------------------------------------------------------------------


def _lock(data_dir: str) -> int:
    fd = os.open(os.path.join(data_dir, "up.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise UpError(f"another hakube up is running on {data_dir}") from exc
    return fd


def run(args: UpSettings) -> int:
    try:
        data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
        os.makedirs(data_dir, exist_ok=True)
        lock_fd = _lock(data_dir)
        masters = load_or_create_state(data_dir, args.masters, args.base_port)
        _stop_leftovers(data_dir, masters)
        Pki(os.path.join(data_dir, "pki")).init({})  # this cluster's own CA, kept across runs
        busy = [
            f"{addr} ({m['name']} {what})"
            for m in masters
            for what, addr in (("API", m["api"]), ("Raft", m["raft"]), ("metrics", m["metrics"]))
            if not _port_free(addr)
        ]
        if busy:
            raise UpError(
                f"port in use: {', '.join(busy)}; stop what holds it, or use another --data-dir"
            )
    except (UpError, OSError, PkiError) as exc:
        print(f"hakube up: {exc}", file=sys.stderr)
        return 1
    try:
        run_until_signal(Up(args, data_dir, masters), what="hakube up")
    finally:
        os.close(lock_fd)
    return 0


class Up:
    """Start, report, supervise (restart the dead) until ``stop()``: a
    ``hakube.lifecycle.Service`` (``ready`` once the cluster is up and reported); a cluster
    that cannot come up is stopped again and ``run()`` raises ``StartupError``."""

    def __init__(self, args: UpSettings, data_dir: str, masters: list[dict[str, str]]) -> None:
        self.args = args
        self.data_dir = data_dir
        self.cluster = LocalCluster(data_dir, 0, ca=Pki(os.path.join(data_dir, "pki")))
        # Secure by default: Secrets encrypted at rest with a key made once per cluster, and
        # an audit log per master.
        keys = os.path.join(data_dir, "encryption.yaml")
        if not os.path.exists(keys):
            write_private(keys, new_config().encode())
        self.cluster.masters = [
            MasterProc(
                name=m["name"],
                api=m["api"],
                raft=m["raft"],
                metrics=m["metrics"],
                k8s_api=m["k8s_api"],
                data_dir=os.path.join(data_dir, m["name"]),
                log_path=os.path.join(data_dir, f"{m['name']}.log"),
                extra_args=[
                    "--encryption-provider-config",
                    keys,
                    "--audit-log-path",
                    os.path.join(data_dir, "audit", f"{m['name']}.log"),
                ],
            )
            for m in masters
        ]
        self.client_config = config_path(args.client_config or None)
        self.kubeconfig = os.path.join(data_dir, "kubeconfig")
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.supervisor = Supervisor(
            RestartPolicy(restart=not args.no_restart, delay=args.restart_delay)
        )
        for m in self.cluster.masters:
            self.supervisor.add(
                m.name, "master", self._starter(m), log_path=m.log_path, pid_file=self._pid_file(m)
            )
        self.agents = LocalAgents(data_dir, [], supervisor=self.supervisor)
        proxy = args.runtime == "containerd" and args.proxy_mode == "nftables"
        self.components = UpComponents(
            data_dir,
            self.cluster.endpoints(),
            self.supervisor,
            pki=self.cluster.pki,
            # The controller-manager's default pod network: ClusterIP traffic from outside it
            # (the host, host-network pods) is masqueraded, as on a multi-node cluster.
            proxy_args=["--cluster-cidr", DEFAULT_CLUSTER_CIDR] if proxy else None,
        )
        self.dns = LocalDns(
            data_dir, self.cluster.endpoints(), pki=self.cluster.pki, supervisor=self.supervisor
        )

    def stop(self) -> None:
        """Idempotent, from any thread: ``run()`` stops every child and returns."""
        self.stopping.set()

    def _pid_file(self, m: MasterProc) -> str:
        return os.path.join(self.data_dir, f"{m.name}.pid")

    def _starter(self, m: MasterProc) -> Callable[[], subprocess.Popen[bytes]]:
        """How the supervisor starts ``m``: through the cluster, which keeps ``m.proc``."""

        def start() -> subprocess.Popen[bytes]:
            self.cluster.start(m)
            assert m.proc is not None
            return m.proc

        return start

    def run(self) -> None:
        if self.stopping.is_set():
            return
        try:
            self._run()
        finally:
            self._stop()

    def _run(self) -> None:
        with open(os.path.join(self.data_dir, "up.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        c = self.cluster
        print(f"hakube up: starting {len(c.masters)} masters (data in {self.data_dir})", flush=True)
        for m in c.masters:
            self.supervisor.start(m.name)
        try:
            self._wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            raise StartupError(f"hakube up: {exc}") from exc
        if self.stopping.is_set():
            return
        self._write_client_config()
        try:
            token, ca_hash = self._join_token() if self.args.nodes else ("", "")
        except HakubeError as exc:
            raise StartupError(f"hakube up: cannot create a token for the nodes: {exc}") from exc
        metrics = self._metrics_addresses()
        self.agents = LocalAgents(
            self.data_dir,
            self.cluster.endpoints(),
            runtime=self.args.runtime,
            cri_endpoint=self.args.cri_endpoint,
            cni_conf_dir=self.args.cni_conf_dir,
            token=token,
            ca_hash=ca_hash,
            supervisor=self.supervisor,
            metrics=metrics,
        )
        try:
            self._start_dns()  # before the ClusterIP allocator can hand out 10.96.0.10
        except (HakubeError, ValueError) as exc:
            raise StartupError(f"hakube up: cluster DNS: {exc}") from exc
        self.agents.start(self.args.nodes)
        if not self.args.no_components:
            self.components.metrics = metrics
            self.components.start()
        self._write_prometheus_config(metrics)
        self._report()
        self.ready.set()
        while not self.stopping.wait(0.25):
            for line in self.supervisor.poll():
                print(f"hakube up: {line}", flush=True)

    def _start_dns(self) -> None:
        """One ``hakube dns`` (hakube.local.dns) and the kube-dns Service naming it."""
        if self.args.no_dns:
            return
        if self.args.dns_listen:
            ip, _, port = self.args.dns_listen.rpartition(":")
            addr = DnsAddress(ip.strip("[]"), int(port))
        else:
            addr = listen_address(self.data_dir, self.args.runtime)
        with self.cluster.client(timeout=30) as client:
            ensure_kube_dns(client, [addr])
        # The identity names the data dir, so that a later hakube up finds a leftover instance.
        self.dns.start("dns", addr, identity=os.path.join(self.data_dir, "dns"))

    def _wait_ready(self) -> None:
        """Until every master is ready and the standard namespaces exist (the masters create
        them just after becoming ready; a first `hakubectl apply` must not beat them)."""
        deadline = time.monotonic() + 60
        while not self.stopping.is_set():
            try:
                self.cluster.wait_ready(timeout=0.5)
                if self.cluster.bootstrapped():
                    return
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"masters not ready within 60s; see the logs in {self.data_dir}")

    def _write_client_config(self) -> None:
        pki = self.cluster.pki
        cfg = ClientConfig(
            servers=self.cluster.endpoints(), tls=tls_settings(pki.user_tls("admin"))
        )
        note = (
            f"hakube client config, written by `hakube up` for {self.data_dir}\n"
            "The cluster's admin (users/admin in its PKI dir). See docs/client-config.md."
        )
        copy = os.path.join(self.data_dir, "client-config")
        write_client_config(copy, cfg, comment=note)
        write_client_config(self.client_config, cfg, comment=note)
        # The scheduler and controller-manager started below find their credentials here,
        # whichever --client-config the user chose.
        os.environ[ENV_CONFIG] = copy
        # The same admin for kubectl, through the first master's Kubernetes REST API.
        self.kubeconfig = self.cluster.kubeconfig(os.path.join(self.data_dir, "kubeconfig"))

    def _metrics_addresses(self) -> dict[str, str]:
        """Metrics addresses of the agents and components, recorded in cluster.yaml."""
        names = [] if self.args.no_components else list(COMPONENTS)
        names += [f"node-{i}" for i in range(1, self.args.nodes + 1)]
        return metrics_addresses(os.path.join(self.data_dir, STATE_FILE), names)

    def _write_prometheus_config(self, metrics: dict[str, str]) -> None:
        """``prometheus.yml``: every process this run started, as static targets."""
        targets = [Target(JOBS["master"], m.name, m.metrics) for m in self.cluster.masters]
        for name, addr in metrics.items():
            job = JOBS[name] if name in COMPONENTS else JOBS["agent"]
            targets.append(Target(job, name, addr))
        write_prometheus_config(
            os.path.join(self.data_dir, "prometheus.yml"),
            prometheus_config(targets),
            comment=f"Prometheus scrape config, written by `hakube up` for {self.data_dir}\n"
            "Every process it started; see docs/observability.md for the alert rules.",
        )

    def _join_token(self) -> tuple[str, str]:
        """A bootstrap token for this run's node agents (nodes that joined before keep their
        certificates and ignore it), and the CA hash to check."""
        with self.cluster.client(timeout=30) as client:
            token, _ = create_token(client, datetime.timedelta(hours=1), "hakube up: node agents")
        return str(token), certs.ca_hash(files.read(self.cluster.pki.ca_cert))

    def _report(self) -> None:
        c = self.cluster
        try:
            leader = c.leader(timeout=10).name
        except TimeoutError:
            leader = "<electing>"
        print(f"hakube up: {len(c.masters)} masters ready, leader {leader}", flush=True)
        for m in c.masters:
            pid = m.proc.pid if m.proc else "-"
            print(
                f"  {m.name}  api {m.api}  kubernetes api https://{m.k8s_api}  raft {m.raft}"
                f"  metrics http://{m.metrics}/metrics"
                f"  pid {pid}  log {m.log_path}",
                flush=True,
            )
        for line in self.components.report() + self.dns.report():
            print(line, flush=True)
        print(f"prometheus config: {os.path.join(self.data_dir, 'prometheus.yml')}", flush=True)
        print(f"client config: {self.client_config} - try `hakubectl cluster status`", flush=True)
        print(
            f"console: hakube console --client-config {self.client_config} (with "
            "--prometheus-url of a Prometheus run on prometheus.yml: alerts on the overview)",
            flush=True,
        )
        print(
            f"kubeconfig: {self.kubeconfig} - try `KUBECONFIG={self.kubeconfig} kubectl get pods`",
            flush=True,
        )
        for a in self.agents.agents:
            print(
                f"  {a.name}  agent ({self.args.runtime})  pid {a.pid}  log {a.log_path}",
                flush=True,
            )
        print(
            "Ctrl-C stops the cluster; `hakube up` on the same --data-dir resumes it.", flush=True
        )

    def _stop(self) -> None:
        if self.agents.agents:
            print("hakube up: stopping node agents", flush=True)
            self.agents.stop()
        self.components.stop()
        self.dns.stop()
        print("hakube up: stopping masters", flush=True)
        self.supervisor.stop(["master"], timeout=10)
        try:
            os.unlink(os.path.join(self.data_dir, "up.pid"))
        except OSError:
            pass
        print("hakube up: stopped", flush=True)
