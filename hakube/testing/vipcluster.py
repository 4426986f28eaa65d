"""keepalived on harness hosts: render, start, kill, and watch where the VIP is.

A :class:`VipCluster` renders each host's keepalived.conf with :mod:`hakube.vip` (the same code
``hakube keepalived render`` runs), has keepalived vet it inside the host, and runs keepalived in
the foreground there. Whatever answers the check's readiness URL -- a real master, or the
:mod:`readyz_stub` -- is the caller's business.

Timings are measured by polling the hosts' addresses every few milliseconds against a deadline
(:func:`measure_until`); nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from hakube.testing import readyz_stub
from hakube.testing.netns import IFNAME, Host, Network, signal_all
from hakube.vip import VipSettings, config_test, write_files

RELOADED = "Reload complete"
"""What keepalived (2.2) logs once a SIGHUP reload is done. A reload keeps each instance's
state and the check's last result ("considered successful on reload"): the holder keeps the
VIP."""


def measure_until(
    cond: Callable[[], object], timeout: float, what: str, interval: float = 0.01
) -> float:
    """Seconds until ``cond()`` is truthy; TimeoutError naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def start_readyz_stub(
    host: Host, *, port: int, unready_file: Path, timeout: float = 10.0
) -> subprocess.Popen[bytes]:
    """Run :mod:`readyz_stub` on ``host`` and wait until it answers."""
    log = host.network.workdir / f"stub-{host.name}.log"
    argv = [sys.executable, "-I", readyz_stub.__file__, "--listen", f"0.0.0.0:{port}"]
    argv += ["--name", host.name, "--unready-file", str(unready_file)]
    proc = host.spawn(argv, log=log)
    url = f"http://127.0.0.1:{port}/"
    measure_until(lambda: host.fetch(url)[0] == 200, timeout, f"readyz stub on {host.name}")
    return proc


@dataclass
class Member:
    host: Host
    settings: VipSettings
    conf: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    stopping: bool = False


class VipCluster:
    """keepalived on each of ``hosts``, all guarding ``vip``."""

    def __init__(
        self,
        net: Network,
        hosts: Iterable[Host],
        *,
        vip: str,
        readyz_url: Callable[[Host], str],
        base: VipSettings | None = None,
    ) -> None:
        """``base`` supplies the VRRP and check knobs; addresses, peers and priority are
        filled in per host (priorities descend in the order given, so start-up is
        deterministic)."""
        self.net = net
        self.vip = vip
        self._readyz_url = readyz_url
        self._base = base or VipSettings(
            vip=vip, interface=IFNAME, interface_address="", peers=(), readyz_url=""
        )
        self.members: dict[str, Member] = {}
        hosts = list(hosts)
        for i, host in enumerate(hosts):
            peers = [h.ip for h in hosts if h is not host]
            self.members[host.name] = self._configure(host, peers, 100 - i)

    def _configure(self, host: Host, peers: list[str], priority: int) -> Member:
        """Render and vet ``host``'s keepalived.conf (rewriting it if it exists)."""
        settings = replace(
            self._base,
            vip=self.vip,
            interface=IFNAME,
            interface_address=str(host.address),
            peers=tuple(peers),
            readyz_url=self._readyz_url(host),
            priority=priority,
        )
        conf, _ = write_files(settings, self.net.workdir / f"keepalived-{host.name}")
        config_test(conf, netns=host.netns)
        log = self.net.workdir / f"keepalived-{host.name}.log"
        return Member(host, settings, conf, log)

    def join(self, host: Host, timeout: float = 15.0) -> None:
        """Add ``host`` to the VRRP group the way the runbook does (docs/operations.md).

        Each member's config lists its unicast peers and, with ``check_unicast_src``, drops
        adverts from anyone else. So first every current member is re-rendered with the
        newcomer as a peer and reloaded (SIGHUP), and only then is keepalived started on the
        newcomer: started earlier, it would hear no advert from the holder, count it dead and
        take the VIP as well.
        """
        if host.name in self.members:
            raise ValueError(f"{host.name} is in the VRRP group already")
        priority = min((m.settings.priority for m in self.members.values()), default=101) - 1
        peers = [m.host.ip for m in self.members.values()]
        self.reload(extra={host.name: host}, timeout=timeout)
        self.members[host.name] = self._configure(host, peers, priority)
        self.start(host.name)

    def leave(self, name: str, timeout: float = 15.0) -> None:
        """Take ``name`` out of the VRRP group: stop its keepalived (SIGTERM: if it holds the
        VIP, its priority-0 goodbye hands it over at once), then re-render the others without
        it and reload them."""
        member = self.members[name]
        if member.proc is not None and member.proc.poll() is None:
            self.kill(name, signal.SIGTERM)
            member.proc.wait(timeout)
        del self.members[name]
        self.reload(timeout=timeout)

    def reload(self, *, extra: dict[str, Host] | None = None, timeout: float = 15.0) -> None:
        """Re-render every member's config with the current group (plus ``extra`` hosts as
        peers) and SIGHUP the running keepalived on each; returns once each has logged that
        the reload is done."""
        group = [m.host for m in self.members.values()] + list((extra or {}).values())
        waiting = []
        for name, m in list(self.members.items()):
            peers = [h.ip for h in group if h is not m.host]
            fresh = self._configure(m.host, peers, m.settings.priority)
            fresh.proc, fresh.stopping = m.proc, m.stopping
            self.members[name] = fresh
            if m.proc is not None and m.proc.poll() is None:
                before = self.log_text(name).count(RELOADED)
                signal_all([m.proc.pid], signal.SIGHUP)
                waiting.append((name, before))
        for name, before in waiting:
            measure_until(
                lambda n=name, b=before: self.log_text(n).count(RELOADED) > b,  # type: ignore[misc]
                timeout,
                f"keepalived on {name} to reload",
            )

    def start(self, name: str | None = None) -> None:
        """Start keepalived on one host, or on all."""
        for member in self._select(name):
            if member.proc is not None and member.stopping:
                member.proc.wait(timeout=15)  # a stop this cluster asked for must be over
            running = [p for p in member.host.pids() if _comm(p) == "keepalived" and _live(p)]
            if running:
                raise RuntimeError(f"keepalived already runs on {member.host.name}: {running}")
            run = member.conf.parent
            # keepalived refuses to start while a pid file names a process that exists, and a
            # killed keepalived may linger as a zombie until init reaps it.
            for pidfile in ("keepalived.pid", "vrrp.pid"):
                (run / pidfile).unlink(missing_ok=True)
            argv = ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog"]
            argv += ["--vrrp", "-f", str(member.conf)]
            argv += ["-p", str(run / "keepalived.pid"), "-r", str(run / "vrrp.pid")]
            member.proc = member.host.spawn(argv, log=member.log)
            member.stopping = False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> float:
        """Signal keepalived (parent and VRRP child) on ``name``; returns the monotonic time.

        SIGKILL leaves the VIP configured on the host, as on a real crash of keepalived.
        """
        member = self.members[name]
        pids = [p for p in member.host.pids() if _comm(p) == "keepalived"]
        if sig == signal.SIGKILL:
            # Stopped first, or the VRRP child, told of its parent's death by SIGTERM, could
            # send its priority-0 goodbye before it dies: a clean stop, not a crash.
            signal_all(pids, signal.SIGSTOP)
        at = time.monotonic()
        signal_all(pids, sig)
        member.stopping = sig in (signal.SIGKILL, signal.SIGTERM)
        # No waiting for the exit here: a clean stop takes keepalived about a second, and the
        # VIP moves during it. start() waits.
        return at

    def holders(self) -> list[str]:
        """Names of the hosts that have the VIP on their interface now."""
        return [n for n, m in self.members.items() if m.host.has_address(self.vip)]

    def wait_for_single_holder(
        self,
        timeout: float,
        *,
        among: Iterable[str] | None = None,
        not_: str | None = None,
        since: float | None = None,
    ) -> tuple[str, float]:
        """Wait until exactly one host of ``among`` (default: all) holds the VIP, and it is not
        ``not_``; returns (its name, seconds). Seconds count from ``since`` (a monotonic time,
        e.g. the moment of a kill) if given, else from the call."""
        start = time.monotonic() if since is None else since
        pool = set(among) if among is not None else set(self.members)
        found: list[str] = []

        def single() -> bool:
            found[:] = [n for n in self.holders() if n in pool]
            return len(found) == 1 and found[0] != not_

        what = f"exactly one of {sorted(pool)} to hold {self.vip}"
        measure_until(single, timeout, what)
        return found[0], time.monotonic() - start

    def log_text(self, name: str) -> str:
        path = self.members[name].log
        return path.read_text(errors="replace") if path.exists() else ""

    def _select(self, name: str | None) -> list[Member]:
        return [self.members[name]] if name else list(self.members.values())


def _live(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
