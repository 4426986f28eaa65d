"""``hakube scheduler``: the leader-elected scheduler as one process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hakube.httpendpoint import new_registry
from hakube.leaderelection import add_component_flags, run_component
from hakube.scheduler import Scheduler, SchedulerConfig

NAME = "scheduler"


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(NAME, help="run the leader-elected scheduler")
    add_component_flags(p, lease="hakube-scheduler")
    add_scheduler_flags(p)
    return {NAME: run}


def add_scheduler_flags(p: argparse.ArgumentParser) -> None:
    d = SchedulerConfig()
    p.add_argument(
        "--scheduler-name", default=d.name, help="schedule pods whose spec.schedulerName is this"
    )
    p.add_argument(
        "--bind-workers", type=int, default=d.bind_workers, help="concurrent Bind/status writes"
    )
    p.add_argument(
        "--pod-initial-backoff",
        type=float,
        default=d.initial_backoff,
        help="seconds before retrying a pod that did not fit (doubles per attempt)",
    )
    p.add_argument(
        "--pod-max-backoff",
        type=float,
        default=d.max_backoff,
        help="cap of the retry back-off, seconds",
    )
    p.add_argument(
        "--max-unschedulable-wait",
        type=float,
        default=d.max_unschedulable_wait,
        help="retry an unschedulable pod at least this often, seconds",
    )
    p.add_argument(
        "--no-events", action="store_true", help="do not record Scheduled/FailedScheduling events"
    )


def scheduler_config(args: argparse.Namespace) -> SchedulerConfig:
    if args.bind_workers < 1:
        raise ValueError(f"--bind-workers must be at least 1 (got {args.bind_workers})")
    if args.pod_initial_backoff <= 0 or args.pod_max_backoff < args.pod_initial_backoff:
        raise ValueError("--pod-initial-backoff must be > 0 and <= --pod-max-backoff")
    return SchedulerConfig(
        name=args.scheduler_name,
        bind_workers=args.bind_workers,
        initial_backoff=args.pod_initial_backoff,
        max_backoff=args.pod_max_backoff,
        max_unschedulable_wait=args.max_unschedulable_wait,
        events=not args.no_events,
    )


def run(args: argparse.Namespace) -> int:
    registry = new_registry()
    try:
        config = scheduler_config(args)
    except ValueError as exc:
        print(f"hakube {NAME}: {exc}", file=sys.stderr)
        return 2
    return run_component(f"hakube {NAME}", args, Scheduler(config, registry=registry), registry)
