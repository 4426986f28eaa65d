"""``hakube controller-manager``: the leader-elected controllers as one process."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from hakube.controllers import all as _all  # noqa: F401 - registers the controllers
from hakube.controllers.manager import REGISTRY, ControllerManager, select
from hakube.httpendpoint import new_registry
from hakube.leaderelection import add_component_flags, run_component

NAME = "controller-manager"


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(NAME, help="run the leader-elected controllers")
    add_component_flags(p, lease="hakube-controller-manager")
    p.add_argument(
        "--controllers",
        default="*",
        help="which to run: '*' all, NAME, -NAME; comma-separated "
        f"(known: {', '.join(sorted(REGISTRY))})",
    )
    for cls in REGISTRY.values():
        cls.add_flags(p)
    return {NAME: run}


def manager_for(args: argparse.Namespace, registry: CollectorRegistry) -> ControllerManager:
    """The manager selected by ``--controllers``; ValueError names an unknown controller or
    settings that cannot work together."""
    names = select(args.controllers)
    for name in names:
        REGISTRY[name].check_settings(args)
    return ControllerManager(names, args, registry=registry)


def run(args: argparse.Namespace) -> int:
    registry = new_registry()
    try:
        manager = manager_for(args, registry)
    except ValueError as exc:
        print(f"hakube {NAME}: {exc}", file=sys.stderr)
        return 2
    return run_component(f"hakube {NAME}", args, manager, registry)
