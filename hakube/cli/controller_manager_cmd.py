"""``hakube controller-manager``: the leader-elected controllers as one process."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from hakube.controllers import all as _all  # noqa: F401 - registers the controllers
from hakube.controllers.manager import REGISTRY, ControllerManager, select
from hakube.controllers.settings import ControllerSettings
from hakube.httpendpoint import new_registry
from hakube.leaderelection import ComponentSettings, run_component
from hakube.settings import add_flags, group, setting

NAME = "controller-manager"


def _controllers(spec: str) -> str:
    select(spec)  # ValueError naming an unknown controller
    return spec


@dataclass(frozen=True)
class ControllerManagerSettings:
    """``hakube controller-manager``: the leader election's settings and the controllers'."""

    controllers: str = setting(
        "*",
        parse=_controllers,
        help="Which controllers to run: '*' all, NAME, -NAME; comma-separated "
        f"(known: {', '.join(sorted(REGISTRY))}).",
    )
    component: ComponentSettings = group(
        lambda: ComponentSettings(lease_name="hakube-controller-manager")
    )
    knobs: ControllerSettings = group(ControllerSettings)


def add_parser(
    sub: argparse._SubParsersAction,
) -> dict[str, Callable[[ControllerManagerSettings], int]]:
    p = sub.add_parser(NAME, help="run the leader-elected controllers")
    add_flags(p, ControllerManagerSettings)
    return {NAME: run}


def run(settings: ControllerManagerSettings) -> int:
    registry = new_registry()
    manager = ControllerManager(select(settings.controllers), settings.knobs, registry=registry)
    return run_component(f"hakube {NAME}", settings.component, manager, registry)
