"""``hakube scheduler``: the leader-elected scheduler as one process."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from hakube.httpendpoint import new_registry
from hakube.leaderelection import ComponentSettings, run_component
from hakube.scheduler import Scheduler, SchedulerConfig
from hakube.settings import add_flags, group

NAME = "scheduler"


@dataclass(frozen=True)
class SchedulerSettings:
    """``hakube scheduler``: the leader election's settings and the scheduler's."""

    component: ComponentSettings = group(lambda: ComponentSettings(lease_name="hakube-scheduler"))
    scheduler: SchedulerConfig = group(SchedulerConfig)


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[SchedulerSettings], int]]:
    p = sub.add_parser(NAME, help="run the leader-elected scheduler")
    add_flags(p, SchedulerSettings)
    return {NAME: run}


def run(settings: SchedulerSettings) -> int:
    registry = new_registry()
    work = Scheduler(settings.scheduler, registry=registry)
    return run_component(f"hakube {NAME}", settings.component, work, registry)
