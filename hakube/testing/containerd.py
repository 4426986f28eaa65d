"""A private, throw-away containerd for tests of real container behaviour.

Everything lives under one directory of its own: config file, root and state dirs, the gRPC
socket, runc's state, CNI dirs, pod logs. Nothing is shared with a containerd the machine may
already run (which keeps /run/containerd and /var/lib/containerd). The CRI plugin is set up the
way this project's machines need (``restrict_oom_score_adj``: no CAP_SYS_RESOURCE here; a
locally built sandbox image, since no registry is reachable), and the snapshotter is overlayfs
when an overlay mount works here, else native.

Cleanup kills only what this harness caused to run, by pid: the containerd it spawned, then any
shim whose command line names this harness's own socket, with the processes under it (normally
none: sandboxes are removed through CRI first). It unmounts what lies under its directory,
removes the cgroups under
its own cgroup root, and deletes the directory.

Requires root, ``containerd``, ``ctr`` and ``runc`` (scripts/install/containerd.sh). Anything
missing raises ``ContainerdUnavailable`` with the reason; tests decide to skip or fail on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hakube.cri.client import CriClient, Timeouts
from hakube.cri.errors import CriError
from hakube.testing.images import BUSYBOX, OciImage, busybox_image, pause_image

log = logging.getLogger(__name__)

SANDBOX_IMAGE = "hakube.test/pause:1"
"""The sandbox ("pause") image every pod of the private containerd runs first."""
BUSYBOX_IMAGE = "hakube.test/busybox:1"
"""The general test image: busybox-static with sh and common applets."""

CNI_PLUGINS = Path("/usr/lib/cni")
"""Where Debian's containernetworking-plugins puts the CNI plugin binaries."""

CRI_NAMESPACE = "k8s.io"
"""containerd namespace the CRI plugin keeps its images and containers in."""

_DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


class ContainerdUnavailable(RuntimeError):
    """containerd cannot run here; the message says why and what to install."""


@dataclass(frozen=True)
class ContainerdSettings:
    """How to start the private containerd."""

    base_dir: Path | None = None
    """Directory for everything; a fresh temp dir (removed on stop) when None."""
    snapshotter: str | None = None
    """"overlayfs" or "native"; None probes whether an overlay mount works here."""
    start_timeout: float = 30.0
    """Seconds for containerd to answer CRI Version; it takes well under 1 s here."""
    stop_timeout: float = 10.0
    """Seconds to wait after SIGTERM before SIGKILL."""
    sandbox_image: str = SANDBOX_IMAGE
    """Image of the pause container; built and imported by ``load_test_images``."""
    log_level: str = "info"
    systemd_cgroup: bool = False
    """runc with the systemd cgroup driver (``SystemdCgroup = true``, as the Ansible role
    configures it); only the agent's driver check uses it here (no container is run)."""
    netns: str = ""
    """Run containerd inside this network namespace (a name under /run/netns), so that the CNI
    plugins it runs build the pod network there; empty: the caller's. Only the network
    namespace is entered: mounts stay in the caller's mount namespace, where stop() finds them."""


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the harness (empty when all is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (containerd and runc need it)")
    for tool in ("containerd", "ctr", "runc"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (Debian: apt-get install containerd runc)")
    if not BUSYBOX.exists():
        missing.append(f"{BUSYBOX} (Debian: apt-get install busybox-static)")
    return missing


def overlay_works(scratch: Path) -> bool:
    """Whether an overlay mount can be made in ``scratch`` (mounted and unmounted at once)."""
    dirs = {n: scratch / n for n in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
    try:
        r = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs["merged"])],
            capture_output=True,
            timeout=10,
        )
        if r.returncode != 0:
            return False
        subprocess.run(["umount", str(dirs["merged"])], capture_output=True, timeout=10)
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Containerd:
    """One private containerd process with the CRI plugin.

    ``start()`` returns when CRI answers; ``stop()`` is idempotent and cleans up everything.
    Usable as a context manager.
    """

    def __init__(self, settings: ContainerdSettings = ContainerdSettings()) -> None:
        self.settings = settings
        self._own_dir = settings.base_dir is None
        self.base = Path(settings.base_dir or tempfile.mkdtemp(prefix="hakube-ctd-"))
        self.socket = self.base / "containerd.sock"
        self.endpoint = "unix://" + str(self.socket)
        self.root = self.base / "root"
        self.state = self.base / "state"
        self.logs = self.base / "pod-logs"
        self.config_path = self.base / "config.toml"
        self.log_path = self.base / "containerd.log"
        # A cgroup of our own for test pods, so cleanup knows exactly what it may remove.
        self.cgroup_root = f"/hakube-test-{uuid.uuid4().hex[:10]}"
        self.snapshotter = settings.snapshotter or ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._client: CriClient | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Containerd:
        """Start containerd and wait until CRI answers; on any failure clean up and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        missing = missing_prerequisites()
        if missing:
            raise ContainerdUnavailable(
                "cannot run containerd here, missing: " + "; ".join(missing)
            )
        for d in (
            self.root,
            self.state,
            self.logs,
            self.base / "cni-bin",
            self.base / "cni-conf",
            self.base / "certs.d",
            self.base / "opt",
            self.base / "runc",
        ):
            d.mkdir(parents=True, exist_ok=True)
        self._link_cni_plugins()
        if not self.snapshotter:
            self.snapshotter = "overlayfs" if overlay_works(self.base / "probe") else "native"
        self.config_path.write_text(self._config())
        log_file = self._log_file = open(self.log_path, "ab")  # closed in stop()
        enter = ["nsenter", f"--net=/run/netns/{self.settings.netns}", "--"]
        self._proc = subprocess.Popen(
            [
                *(enter if self.settings.netns else []),
                "containerd",
                "--config",
                str(self.config_path),
                "--log-level",
                self.settings.log_level,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.base,
        )
        self._client = CriClient(self.endpoint, timeouts=Timeouts(default=5.0))
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        last: Exception | None = None
        assert self._proc is not None and self._client is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ContainerdUnavailable(
                    f"containerd exited with status {self._proc.returncode} at start; "
                    f"log tail:\n{self.log_tail()}"
                )
            if self.socket.exists():
                try:
                    self._client.version(timeout=2.0)
                    return
                except CriError as e:
                    last = e
            time.sleep(0.05)
        raise ContainerdUnavailable(
            f"containerd did not answer CRI within {self.settings.start_timeout}s ({last}); "
            f"log tail:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Remove all sandboxes, stop containerd, kill leftovers, unmount, delete. Idempotent."""
        if self._client is not None:
            if self._proc is not None and self._proc.poll() is None:
                self._remove_all_sandboxes(self._client)
            self._client.close()
            self._client = None
        self._stop_process()
        self._kill_leftover_processes()
        self._unmount_all()
        self._remove_cgroups()
        if self._own_dir and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=False)

    def _stop_process(self) -> None:
        """Terminate the containerd process and close its log (sandboxes stay as they are)."""
        if self._proc is not None:
            _terminate(self._proc, self.settings.stop_timeout)
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        """Stop the containerd process (SIGTERM) and start it again on the same state, as a
        service restart does: sandboxes and containers keep running under their shims."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._stop_process()
        self.start()

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests ----------------------------------------------------------------------

    def client(self, timeouts: Timeouts | None = None) -> CriClient:
        """A new CRI client on this containerd (the caller closes it)."""
        return CriClient(self.endpoint, timeouts=timeouts or Timeouts())

    def pod_log_dir(self, name: str) -> Path:
        """A log directory for one pod, inside this harness's directory."""
        d = self.logs / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def cgroup_parent(self, pod: str) -> str:
        """A cgroup parent for one pod, under this harness's own cgroup root. Sandbox stats need
        one (containerd reads pod-level usage from it)."""
        return f"{self.cgroup_root}/pod-{pod}"

    def ctr(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``ctr`` against this containerd in the CRI namespace; returns stdout."""
        cmd = ["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *args]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def import_image(self, image: OciImage) -> None:
        """Import a locally built image (unpacked for the CRI snapshotter)."""
        archive = image.write_archive(self.base / f"import-{uuid.uuid4().hex[:8]}.tar")
        try:
            self.ctr("images", "import", "--snapshotter", self.snapshotter, str(archive))
        finally:
            archive.unlink(missing_ok=True)

    def load_test_images(self) -> None:
        """Build and import the sandbox image and the busybox test image."""
        self.import_image(pause_image(self.settings.sandbox_image))
        self.import_image(busybox_image(BUSYBOX_IMAGE))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- internals ------------------------------------------------------------------------------

    def _config(self) -> str:
        b = self.base
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        disabled = ", ".join(f'"{p}"' for p in _DISABLED_PLUGINS)
        return f"""\
version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{b / "opt"}"

[{cri}]
  sandbox_image = "{self.settings.sandbox_image}"
  restrict_oom_score_adj = true
  stats_collect_period = 1
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "{self.snapshotter}"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        Root = "{b / "runc"}"
        SystemdCgroup = {"true" if self.settings.systemd_cgroup else "false"}
  [{cri}.cni]
    bin_dir = "{b / "cni-bin"}"
    conf_dir = "{b / "cni-conf"}"
  [{cri}.registry]
    config_path = "{b / "certs.d"}"
"""

    @property
    def cni_conf_dir(self) -> Path:
        """Where this containerd reads CNI network configs. Empty at start, so the runtime
        reports NetworkReady=false and pods can only use the host network until someone (the
        node agent with --pod-cidr) writes a config here."""
        return self.base / "cni-conf"

    def _link_cni_plugins(self) -> None:
        """Make Debian's CNI plugins (containernetworking-plugins, /usr/lib/cni) available to
        this containerd, if installed (scripts/install/cni.sh)."""
        bin_dir = self.base / "cni-bin"
        if CNI_PLUGINS.is_dir():
            for plugin in CNI_PLUGINS.iterdir():
                link = bin_dir / plugin.name
                if not link.exists():
                    link.symlink_to(plugin)

    def _remove_all_sandboxes(self, client: CriClient) -> None:
        try:
            sandboxes = client.list_pod_sandboxes(timeout=10)
        except CriError as e:
            log.warning("containerd harness: cannot list sandboxes at stop: %s", e)
            return
        for sb in sandboxes:
            try:
                client.stop_pod_sandbox(sb.id, timeout=30)
                client.remove_pod_sandbox(sb.id, timeout=30)
            except CriError as e:
                log.warning("containerd harness: cannot remove sandbox %s: %s", sb.id, e)

    def _kill_leftover_processes(self) -> None:
        """Kill what our containerd left running: its shims -- found by the ``-address
        <our socket>`` on their command line, which no other containerd's shim has -- and every
        process under them (containers, and ``runc init`` processes of containers caught
        half-started), deepest first. containerd 1.6 writes no shim.pid file and a container's
        /proc/PID/root does not show the host path, so neither identifies them."""
        marker = f"-address {self.socket}"
        parents = _parents()
        shims = [
            pid for pid in parents if "containerd-shim" in _cmdline(pid) and marker in _cmdline(pid)
        ]
        for shim in shims:
            for pid in sorted(_descendants(shim, parents), key=lambda p: -_depth(p, parents)):
                _kill(pid)
            _kill(shim)

    def _unmount_all(self) -> None:
        prefix = str(self.base) + "/"
        for mp in sorted(_mountpoints(), key=len, reverse=True):
            if mp.startswith(prefix):
                r = subprocess.run(["umount", "-l", mp], capture_output=True, timeout=30)
                if r.returncode != 0:
                    log.warning("containerd harness: umount %s: %s", mp, r.stderr.decode().strip())

    def _remove_cgroups(self) -> None:
        base = Path("/sys/fs/cgroup")
        hierarchies = [base] + ([p for p in base.iterdir() if p.is_dir()] if base.exists() else [])
        for h in hierarchies:
            top = h / self.cgroup_root.lstrip("/")
            if not top.is_dir():
                continue
            # Deepest first: a cgroup dir can only be removed once it has no children.
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _rmdir_quiet(d)
            _rmdir_quiet(top)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                out[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return out


def _descendants(pid: int, parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _depth(pid: int, parents: dict[int, int]) -> int:
    depth = 0
    while pid in parents and depth < 64:
        pid, depth = parents[pid], depth + 1
    return depth


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir_quiet(path: Path) -> None:
    try:
        path.rmdir()
    except OSError as e:
        log.warning("containerd harness: cannot remove cgroup %s: %s", path, e)


def _mountpoints() -> list[str]:
    """Mount points of this mount namespace (octal escapes of mountinfo decoded)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]
            out.append(raw.encode().decode("unicode_escape"))
    return out
