"""``hakube master``: its settings and how they start a master (which lives in hakube.master)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.apiserver.flowcontrol.configfile import apply_file
from hakube.controllers.settings import ControllerSettings
from hakube.leaderelection import Component
from hakube.lifecycle import Running, run_until_signal
from hakube.master import Master, MasterSettings, tune_process
from hakube.pki.layout import Pki
from hakube.settings import add_flags, group, setting
from hakube.store.raft import RaftSettings


@dataclass(frozen=True)
class RaftTuning:
    """The Raft knobs of ``hakube master`` (defaults: ``RaftSettings``'s)."""

    election_timeout_min: float = RaftSettings.election_timeout_min
    """Seconds: the shortest wait without a leader's heartbeat before a follower campaigns."""
    election_timeout_max: float = RaftSettings.election_timeout_max
    """Seconds: the longest such wait (each follower picks one at random between the two)."""
    compaction_min_entries: int = setting(RaftSettings.compaction_min_entries, minimum=1)
    """Compact the Raft log after this many entries."""
    sync_journal: bool = RaftSettings.sync_journal
    """msync the Raft journal every tick (power-loss durability)."""
    fsync: bool = RaftSettings.fsync
    """Sync the Raft journal to disk before acknowledging writes (--no-fsync: writes survive
    a crash of every master but not a power loss of a majority, for lower latency)."""


@dataclass(frozen=True)
class MasterCommandSettings:
    """``hakube master``: the master's settings, its Raft knobs, and what runs beside it."""

    master: MasterSettings = group(MasterSettings)
    raft: RaftTuning = group(RaftTuning)
    flow_config: str = ""
    """YAML file of extra priority levels and flow schemas (docs/api.md); the same on every
    master."""
    with_controllers: bool = False
    """Also run the scheduler and the controllers in this process (leader-elected: one
    master's copy is active)."""
    controllers: ControllerSettings = group(ControllerSettings)


def add_parser(
    sub: argparse._SubParsersAction,
) -> dict[str, Callable[[MasterCommandSettings], int]]:
    p = sub.add_parser("master", help="run one master (store + API server)")
    add_flags(p, MasterCommandSettings)
    return {"master": run}


def run(command: MasterCommandSettings) -> int:
    m = command.master
    raft = dataclasses.asdict(command.raft)
    try:
        flow = apply_file(m.flow, command.flow_config) if command.flow_config else m.flow
        pki = Pki(m.pki_dir or os.path.join(m.data_dir, "pki"))
        RaftSettings(
            name=m.name,
            raft_address=m.raft_listen,
            peers=m.peers,
            data_dir=m.data_dir,
            tls=pki.master_tls(m.name),
            **raft,
        ).validate()
    except ValueError as exc:
        print(f"hakube master: {exc}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(m, raft=raft, flow=flow)
    running: list[Running[Component]] = []

    def components(pki: Pki, registry: CollectorRegistry) -> None:
        # Started once the master has its PKI (it may have just created the CA); their metrics
        # are served with the master's. Imported here: the scheduler and every controller are
        # a third of a master's start-up CPU, wasted without --with-controllers.
        from hakube.cli.in_process import start_in_process

        running.extend(
            start_in_process(
                m.name, m.api_listen, pki, registry=registry, settings=command.controllers
            )
        )

    gctune.install()
    tune_process()
    master = Master(settings, on_serving=components if command.with_controllers else None)
    try:
        run_until_signal(
            master, what="hakube master", handlers={signal.SIGHUP: master.reload_encryption}
        )
    finally:  # a StartupError goes on to hakube.cli.main, which prints it
        if running:
            from hakube.cli.in_process import stop_all

            stop_all(running)
    return 0
