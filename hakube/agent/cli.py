"""``hakube agent``: its settings and signal handling around ``Agent.run()``.

Every setting (``AgentSettings``' fields) is also a ``HAKUBE_<FLAG>`` environment variable or
a key of the ``--config`` file (``hakube.settings``); ``--servers`` falls back to the client
config's masters, so on a machine where ``hakube up`` ran,
``hakube agent --node-name n1 --runtime simulated`` is enough.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hakube import gctune
from hakube.agent.config import AgentSettings
from hakube.lifecycle import run_until_signal
from hakube.settings import add_flags, group


@dataclass(frozen=True)
class AgentCommandSettings:
    """``hakube agent``: the agent's settings and the capacity a simulated node reports."""

    agent: AgentSettings = group(AgentSettings)
    capacity_cpu: str = ""
    """Report this CPU capacity instead of the machine's (simulated nodes)."""
    capacity_memory: str = ""
    """Report this memory capacity instead of the machine's (simulated nodes)."""


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[AgentCommandSettings], int]]:
    p = sub.add_parser(
        "agent",
        help="run the node agent (runs this node's pods via CRI)",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    add_flags(p, AgentCommandSettings)
    return {"agent": run}


def run(args: AgentCommandSettings) -> int:
    from hakube.agent.agent import Agent
    from hakube.agent.join import JoinError

    settings = args.agent

    try:
        agent = Agent(
            settings, capacity_cpu=args.capacity_cpu, capacity_memory=args.capacity_memory
        )
    except JoinError as e:
        print(f"hakube agent: {e}", file=sys.stderr)
        return 1
    gctune.install()
    try:
        run_until_signal(agent, what=f"hakube agent {settings.node_name}")
    except OSError as e:
        print(f"hakube agent: {e}", file=sys.stderr)
        return 1
    return 0
