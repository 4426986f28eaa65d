"""A test network on one machine: hosts in their own network namespaces on one bridge.

Each :class:`Host` is a network namespace with loopback up and one interface, ``eth0``, whose
veth peer sits in a bridge that lives in a namespace of its own. Nothing is added to the
machine's own namespace, so a test cannot disturb the host's interfaces, routes or firewall.
Addresses must lie in TEST-NET-1 (192.0.2.0/24): traffic of a test stays among hosts it made.

Everything a :class:`Network` creates is named ``hk<pid>x<random>-...``, so parallel runs never
collide, and it is all removed by :meth:`Network.close` -- which the context manager calls, and a
finalizer calls at interpreter exit if nobody did. A run killed too hard for either leaves
namespaces behind whose owner pid is dead; the next Network removes those when it starts.

Processes are started inside a host with ``ip netns exec`` (which execs, so the pid returned is
the program's). Killing "everything on a host" means every process in its namespace, which
catches the children a daemon forks as well; no process outside a harness namespace is touched.

Needs root and iproute2; :func:`unavailable_reason` says why a machine cannot run it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from hakube.testing.mounts import unmount_under

TEST_NET = ipaddress.IPv4Network("192.0.2.0/24")
IFNAME = "eth0"
_BRIDGE = "br0"
_OURS = re.compile(r"^hk(\d+)x[0-9a-f]{4}-")


class NetnsError(RuntimeError):
    """An ``ip`` command failed; the message holds the command and what it printed."""


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS`` and return its stdout; NetnsError with its stderr on failure."""
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def unavailable_reason() -> str | None:
    """None if this machine can build networks, else a one-line reason why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"hk{os.getpid()}x{secrets.token_hex(2)}-probe"
    try:
        ip("netns", "add", probe)
    except NetnsError as exc:
        return f"cannot create a network namespace: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def netns_pids(netns: str) -> list[int]:
    """Pids of every process in ``netns`` (empty if it is gone)."""
    return [int(p) for p in ip("netns", "pids", netns, check=False).split()]


def kill_namespace(netns: str, sig: int = signal.SIGKILL, timeout: float = 5.0) -> list[int]:
    """Send ``sig`` to every process in ``netns`` until none is left (SIGKILL) or once.

    For SIGKILL every process is stopped first: a daemon's child that is told of its parent's
    death (keepalived's VRRP process gets SIGTERM then) would otherwise shut down cleanly in
    the gap, and a crash would look like a clean stop.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(netns)
        if sig == signal.SIGKILL:
            signal_all(pids, signal.SIGSTOP)
        for pid in pids:
            try:
                os.kill(pid, sig)
                killed.append(pid)
            except ProcessLookupError:
                pass
        if sig != signal.SIGKILL or not pids or time.monotonic() > deadline:
            return killed
        time.sleep(0.01)


def signal_all(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids`` that still exists."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def cleanup_stale() -> list[str]:
    """Delete harness namespaces whose creating process is dead; returns their names."""
    removed = []
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = _OURS.match(name)
        if not m or _alive(int(m.group(1))):
            continue
        kill_namespace(name)
        ip("netns", "del", name, check=False)
        removed.append(name)
    unmount_stale()
    return removed


def unmount_stale() -> list[Path]:
    """Unmount what lies below harness work directories (``<tmp>/hk<pid>x...``) of runs whose
    process is dead: a run killed before its teardown leaves its agents' tmpfs volumes mounted.
    The directories stay (one kept for debugging must survive); returns what was unmounted."""
    done: list[Path] = []
    tmp = Path(tempfile.gettempdir())
    for d in tmp.iterdir() if tmp.is_dir() else ():
        m = _OURS.match(d.name)
        if m and not _alive(int(m.group(1))) and d.is_dir():
            done += unmount_under(d)
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Resources:
    """What a Network owns, kept apart from it so a finalizer can release it after it is gone."""

    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdir: str | None = None
    keep_workdir: bool = False

    def release(self) -> None:
        for name in reversed(self.namespaces):
            kill_namespace(name)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for name in reversed(self.namespaces):
            ip("netns", "del", name, check=False)
        self.namespaces.clear()
        if self.workdir:
            # Last, once nothing runs that could mount: what the hosts' processes mounted in
            # the shared mount namespace (an agent's Secret volumes) would outlive rmtree.
            unmount_under(self.workdir)
        if self.workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Host:
    """One namespace on the bridge. Create through :meth:`Network.add_host`."""

    def __init__(
        self, network: Network, name: str, netns: str, address: ipaddress.IPv4Interface, port: str
    ) -> None:
        self.network = network
        self.name = name
        self.netns = netns
        self.address = address
        self._port = port  # this host's veth end inside the bridge namespace

    @property
    def ip(self) -> str:
        return str(self.address.ip)

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.address}, netns={self.netns})"

    # -- processes ------------------------------------------------------------------------------

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped to run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self,
        argv: list[str],
        *,
        timeout: float = 30.0,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host to completion and return its result."""
        proc = subprocess.run(
            self.argv(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NetnsError(
                f"{self.name}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def spawn(
        self,
        argv: list[str],
        *,
        log: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the host; stdout and stderr go to ``log``.

        The process is tracked and killed at teardown. It gets its own session, so a signal
        meant for the test runner's terminal does not reach it.
        """
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - Popen keeps it
        try:
            proc = subprocess.Popen(
                self.argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        self.network._res.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        return netns_pids(self.netns)

    def kill_all(self, sig: int = signal.SIGKILL) -> list[int]:
        """Signal every process on this host, as a machine crash would (SIGKILL by default)."""
        killed = kill_namespace(self.netns, sig)
        self.network._reap()
        return killed

    def fetch(self, url: str, *, timeout: float = 2.0) -> tuple[int, str]:
        """HTTP GET from inside this host: (status, body), status 0 if nothing answered."""
        code = (
            "import sys,urllib.request as u,urllib.error as e\n"
            "o=u.build_opener(u.ProxyHandler({}))\n"
            "try:\n r=o.open(sys.argv[1],timeout=float(sys.argv[2]));s,b=r.status,r.read()\n"
            "except e.HTTPError as x: s,b=x.code,x.read()\n"
            "except OSError as x: s,b=0,str(x).encode()\n"
            "print(s);sys.stdout.write(b.decode(errors='replace'))\n"
        )
        res = self.run(
            [sys.executable, "-I", "-c", code, url, str(timeout)], timeout=timeout + 10, check=True
        )
        status, _, body = res.stdout.partition("\n")
        return int(status), body

    # -- the link ---------------------------------------------------------------------------------

    def cut(self, how: str = "drop") -> None:
        """Take the host off the network.

        ``drop``: unplug its cable at the bridge; ``eth0`` stays up with carrier, and whatever it
        sends is lost -- the host cannot tell a partition from silent peers. ``down``: set
        ``eth0`` down inside the host, which daemons on it see (keepalived goes to FAULT).
        """
        if how == "drop":
            ip("-n", self.network.bridge_netns, "link", "set", self._port, "nomaster")
        elif how == "down":
            ip("-n", self.netns, "link", "set", IFNAME, "down")
        else:
            raise ValueError(f"cut how={how!r}: use 'drop' or 'down'")

    def heal(self) -> None:
        """Undo :meth:`cut`, whichever way it was done."""
        ip("-n", self.network.bridge_netns, "link", "set", self._port, "master", _BRIDGE)
        ip("-n", self.netns, "link", "set", IFNAME, "up")

    def ipv4_addresses(self) -> set[str]:
        """IPv4 addresses on ``eth0`` right now (without prefix)."""
        out = ip("-n", self.netns, "-o", "-4", "addr", "show", "dev", IFNAME, check=False)
        return {f.split("/")[0] for line in out.splitlines() for f in line.split()[3:4]}

    def has_address(self, address: str) -> bool:
        return address in self.ipv4_addresses()


class Network:
    """A bridge and the hosts on it. Use as a context manager; :meth:`close` is idempotent."""

    def __init__(self, *, keep_workdir: bool = False) -> None:
        cleanup_stale()
        self.prefix = f"hk{os.getpid()}x{secrets.token_hex(2)}"
        self._res = _Resources(keep_workdir=keep_workdir)
        self._finalizer = weakref.finalize(self, self._res.release)
        self.hosts: dict[str, Host] = {}
        # World-traversable, so daemons that drop privileges (keepalived's script user) can
        # reach files a test puts here.
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.workdir.chmod(0o755)
        self._res.workdir = str(self.workdir)
        self.bridge_netns = self._add_netns("br")
        ip("-n", self.bridge_netns, "link", "add", _BRIDGE, "type", "bridge")
        ip("-n", self.bridge_netns, "link", "set", _BRIDGE, "up")

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process in the network's namespaces and delete them and the workdir."""
        self._finalizer()

    @property
    def namespaces(self) -> list[str]:
        return list(self._res.namespaces)

    def add_host(self, name: str, address: str) -> Host:
        """Add host ``name`` with ``address`` (``192.0.2.N`` or ``192.0.2.N/prefix``)."""
        if name in self.hosts or not re.match(r"^[a-z0-9]{1,8}$", name):
            raise ValueError(f"host name {name!r}: must be new and 1..8 of a-z 0-9")
        iface = ipaddress.IPv4Interface(address if "/" in address else f"{address}/24")
        if iface.ip not in TEST_NET or not iface.network.subnet_of(TEST_NET):
            raise ValueError(f"host address {address}: test hosts live in {TEST_NET} only")
        netns = self._add_netns(name)
        port = f"p{len(self.hosts)}"
        br = self.bridge_netns
        ip("-n", br, "link", "add", port, "type", "veth", "peer", "name", IFNAME, "netns", netns)
        ip("-n", br, "link", "set", port, "master", _BRIDGE)
        ip("-n", br, "link", "set", port, "up")
        ip("-n", netns, "addr", "add", str(iface), "dev", IFNAME)
        ip("-n", netns, "link", "set", IFNAME, "up")
        host = Host(self, name, netns, iface, port)
        self.hosts[name] = host
        return host

    def _add_netns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        ip("netns", "add", name)
        self._res.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def _reap(self) -> None:
        for proc in self._res.procs:
            proc.poll()
