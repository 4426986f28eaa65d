"""One fault run: masters and a client on netns hosts, the workloads, a seeded nemesis, checks.

Used by the test suite (a short run) and by ``bench/jepsen.py`` (long runs). Everything runs in
namespaces the run creates and removes: masters ``m1..mN`` at 192.0.2.11.., the client at
192.0.2.100. The report says whether the history is valid and lists the faults.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hakube.local.cluster import write_config
from hakube.pki.layout import Pki
from hakube.testing import netmasters
from hakube.testing.jepsen import checks, linear, probe, timeline
from hakube.testing.jepsen.history import Op
from hakube.testing.jepsen.nemesis import POWER_CUTS, Fault, Nemesis
from hakube.testing.jepsen.workload import INITIAL
from hakube.testing.lazyfs.mount import LazyFS
from hakube.testing.netns import Host, Network


@dataclass
class RunConfig:
    masters: int = 5
    seconds: float = 60.0
    seed: int = 0
    fault_every: tuple[float, float] = (2.0, 6.0)
    """Seconds of calm between faults (uniform in the range)."""
    fault_for: tuple[float, float] = (3.0, 8.0)
    """How long each fault lasts."""
    kinds: tuple[str, ...] = ()
    """Fault kinds to draw from (empty: all of Nemesis.kinds)."""
    master_flags: list[str] = field(default_factory=list)
    keys: int = 5
    disk_mb: int = 0
    """Give the first master a tmpfs of this many MiB as its data directory and add the
    ``disk-full`` fault (0: no)."""
    lazyfs: bool = False
    """Keep every master's data on a lazy file system and add the power-cut faults."""
    serializable_reads: bool = False
    """Read registers without the quorum barrier: a run that should find stale reads."""
    out: Path | None = None
    """Where to copy the report, history and master logs."""


@dataclass
class RunResult:
    valid: bool | None
    report: str
    ops: int
    faults: list[Fault]
    svg: str = ""
    """The timeline picture (timeline.py)."""


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def run(cfg: RunConfig) -> RunResult:
    if cfg.lazyfs and cfg.disk_mb:
        raise ValueError("RunConfig: lazyfs and disk_mb both give m1 its data dir; choose one")
    if not cfg.lazyfs and set(cfg.kinds) & set(POWER_CUTS):
        raise ValueError(
            f"RunConfig.kinds: {', '.join(POWER_CUTS)} need RunConfig.lazyfs (--lazyfs)"
        )
    mounts: list[Path] = []
    lazy: dict[str, LazyFS] = {}
    try:
        with Network() as net:
            return _run_in(cfg, net, mounts, lazy)
    finally:
        for m in mounts:  # after the network's processes are gone
            subprocess.run(["umount", "-l", str(m)], capture_output=True, timeout=30)
        for fs in lazy.values():
            fs.close()
        for m in [*mounts, *(Path(fs.mountpoint) for fs in lazy.values())]:
            # The network removed its work directory while these were mounted on it.
            shutil.rmtree(m.parent, ignore_errors=True)


def _run_in(cfg: RunConfig, net: Network, mounts: list[Path], lazy: dict[str, LazyFS]) -> RunResult:
    """The run, keeping its logs and history under ``cfg.out`` however it ends."""
    try:
        return _run(cfg, net, mounts, lazy)
    finally:
        if cfg.out is not None:
            cfg.out.mkdir(parents=True, exist_ok=True)
            for log in net.workdir.glob("*.log"):
                shutil.copy(log, cfg.out / log.name)
            hist = net.workdir / "jepsen" / "history.json"
            if hist.exists():
                shutil.copy(hist, cfg.out / "history.json")


def _run(cfg: RunConfig, net: Network, mounts: list[Path], lazy: dict[str, LazyFS]) -> RunResult:
    rng = random.Random(cfg.seed)
    masters = [net.add_host(f"m{i}", f"192.0.2.{10 + i}") for i in range(1, cfg.masters + 1)]
    client = net.add_host("client", "192.0.2.100")
    disks: dict[str, Path] = {}
    if cfg.disk_mb:
        disk = net.workdir / f"data-{masters[0].name}"  # netmasters' data dir of the master
        disk.mkdir(mode=0o700)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={cfg.disk_mb}m,mode=0700", "tmpfs", str(disk)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        mounts.append(disk)
        disks[masters[0].name] = disk

    if cfg.lazyfs:
        for h in masters:  # netmasters' data dir of each master, on a disk of its own
            lazy[h.name] = LazyFS(
                str(net.workdir / f"disk-{h.name}"), str(net.workdir / f"data-{h.name}")
            )

    def start(h: Host) -> None:
        if h.name in lazy:
            lazy[h.name].mount()  # after a power cut: the disk as it survived
        netmasters.start_master(h, masters, extra=cfg.master_flags)

    for h in masters:
        start(h)
    _wait(lambda: all(probe.is_ready(h) for h in masters), 120, "masters ready")
    jdir = net.workdir / "jepsen"
    jdir.mkdir()
    servers = [f"{h.ip}:{netmasters.API_PORT}" for h in masters]
    config = write_config(str(net.workdir / "client.conf"), Pki(str(net.workdir / "pki")), servers)
    env = dict(netmasters.env(), HAKUBE_CONFIG=config)
    argv = [
        sys.executable,
        "-m",
        "hakube.testing.jepsen.workload",
        "--dir",
        str(jdir),
        "--endpoints",
        ",".join(f"{h.name}={h.ip}:{netmasters.API_PORT}" for h in masters),
        "--seconds",
        str(cfg.seconds),
        "--seed",
        str(cfg.seed),
        "--keys",
        str(cfg.keys),
        *(["--serializable-reads"] if cfg.serializable_reads else []),
    ]
    workload = client.spawn(argv, log=net.workdir / "workload.log", env=env)
    monitor = probe.Monitor(masters, net.workdir / "raft.log").start()
    try:
        _wait(
            lambda: (jdir / "ready").exists() or workload.poll() is not None, 120, "workload set up"
        )
        if workload.poll() is not None:
            raise RuntimeError(f"workload exited early: {_tail(net.workdir)}")
        t0 = time.monotonic()
        nemesis = Nemesis(
            masters, start, lambda: probe.leader(masters), rng, lambda: time.monotonic() - t0
        )
        nemesis.disks = disks
        nemesis.lazy = lazy
        if cfg.kinds:
            nemesis.kinds = cfg.kinds
        if disks and "disk-full" not in nemesis.kinds:
            nemesis.kinds = (*nemesis.kinds, "disk-full")
        if lazy and not cfg.kinds:
            nemesis.kinds = (*nemesis.kinds, *POWER_CUTS)
        while not (jdir / "workload-done").exists():
            if workload.poll() is not None:
                raise RuntimeError(f"workload exited early: {_tail(net.workdir)}")
            if _calm(jdir, rng.uniform(*cfg.fault_every)):
                break
            fault = nemesis.inject()
            _log_fault(net.workdir, fault.describe().split("s ", 1)[-1], fault.start)
            _calm(jdir, rng.uniform(*cfg.fault_for))
            nemesis.heal()
            _log_fault(net.workdir, "healed", nemesis.clock())
        nemesis.heal()
        converged = _await_convergence(net.workdir, masters, nemesis, 120)
        (jdir / "healed").write_text("")
        workload.wait(timeout=300 + cfg.seconds / 4)  # final reads grow with the run
        if workload.returncode != 0:
            raise RuntimeError(f"workload failed: {_tail(net.workdir)}")
    finally:
        monitor.stop()
        if workload.poll() is None:
            workload.kill()
            workload.wait()
    history = json.loads((jdir / "history.json").read_text())
    result = judge(history, nemesis)
    result.report += f"\nconverged: every master ready {converged:.1f} s after the final heal"
    if cfg.out is not None:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "report.txt").write_text(result.report + "\n")
        (cfg.out / "timeline.svg").write_text(result.svg)
    return result


def judge(history: dict[str, Any], nemesis: Nemesis) -> RunResult:
    """Every checker over the recorded history, and the report."""
    ops = [
        Op(**{**o, "value": tuple(o["value"]) if isinstance(o["value"], list) else o["value"]})
        for o in history["ops"]
    ]
    registers = [o for o in ops if o.f in ("read", "write", "cas")]
    adds = [o for o in ops if o.f == "add"]
    lin = linear.check(registers, initial=INITIAL)
    sets = checks.check_set(adds, {k: set(v) for k, v in history["final_reads"].items()})
    streams = {name: [checks.Event(**e) for e in evs] for name, evs in history["watches"].items()}
    written = [
        dataclasses.replace(o, value=o.value[1]) if o.f == "cas" else o
        for o in registers
        if o.f != "read"
    ]
    watch = checks.check_watches(streams, written)
    incomplete = [k for k, v in history["watch_complete"].items() if not v]
    if incomplete:
        watch.valid = False
        watch.problems.append(f"watchers that never caught up after the heal: {incomplete}")
    leases = checks.check_leases(
        {k: [(a, b) for a, b in v] for k, v in history.get("leases", {}).items()}
    )
    counts = {s: sum(1 for o in ops if o.outcome == s) for s in ("ok", "fail", "info")}
    verdicts = [lin.valid, sets.valid, watch.valid, leases.valid]
    valid = False if False in verdicts else (None if None in verdicts else True)
    lines = [
        f"valid: {valid}",
        f"operations: {len(ops)} ({counts['ok']} ok, {counts['fail']} fail, {counts['info']} info)",
        lin.text(),
        sets.text(),
        watch.text(),
        leases.text(),
        f"faults ({len(nemesis.timeline)}):",
        *(f"  {f.describe()}" for f in nemesis.timeline),
    ]
    marked = {o.index for k in lin.anomalies for o in k.counterexample}
    picture = timeline.svg(
        ops,
        nemesis.timeline,
        {k: [(a, b) for a, b in v] for k, v in history.get("leases", {}).items()},
        marked,
    )
    return RunResult(valid, "\n".join(lines), len(ops), list(nemesis.timeline), picture)


def _log_fault(workdir: Path, what: str, at: float) -> None:
    """The faults as they happen, in a log kept with the others (a run that fails before its
    report still shows what was done to the cluster)."""
    with open(workdir / "nemesis.log", "a") as f:
        wall = time.strftime("%H:%M:%S", time.gmtime())  # to match with the masters' logs
        f.write(f"{at:9.2f}s {wall} {what}\n")


def _states(masters: list[Host]) -> str:
    """Each master's readiness, process states (R running, S sleeping, T stopped…) and Raft
    view (term, leader?, in quorum?, commit and applied index): what tells a master that is
    catching up from one that is stuck."""
    out = []
    for h in masters:
        states = []
        for pid in netmasters.master_pids(h):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                states.append(f"{pid}:{stat.rsplit(')', 1)[1].split()[0]}")
            except OSError:
                continue
        raft = probe.raft_line(h).split(" ", 1)[1]
        out.append(f"{h.name} ready={probe.is_ready(h)} pids={states or 'none'} {raft}")
    return "; ".join(out)


def _await_convergence(
    workdir: Path, masters: list[Host], nemesis: Nemesis, timeout: float
) -> float:
    """Seconds until every master is ready after the final heal. Each master's state goes to
    the nemesis log at the heal and every 20 s until then, so a master that stays out shows
    whether it is stuck or catching up; TimeoutError (with the states) after ``timeout``."""
    start = time.monotonic()
    _log_fault(workdir, f"final heal; {_states(masters)}", nemesis.clock())
    logged = start
    while not all(probe.is_ready(h) for h in masters):
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(
                f"masters ready after the heal: not within {timeout:.0f} s: {_states(masters)}"
            )
        if now - logged >= 20:
            logged = now
            _log_fault(workdir, f"not converged: {_states(masters)}", nemesis.clock())
        time.sleep(0.2)
    took = time.monotonic() - start
    _log_fault(workdir, f"every master ready {took:.1f} s after the final heal", nemesis.clock())
    return took


def _calm(jdir: Path, seconds: float) -> bool:
    """Wait ``seconds``; True if the workload finished meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (jdir / "workload-done").exists():
            return True
        time.sleep(0.05)
    return False


def _tail(workdir: Path) -> str:
    log = workdir / "workload.log"
    return log.read_text()[-2000:] if log.exists() else "(no log)"
