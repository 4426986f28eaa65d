"""``hakube master`` flags of API priority and fairness (hakube.apiserver.flowcontrol)."""

from __future__ import annotations

import argparse

from hakube.apiserver.flowcontrol import Settings
from hakube.apiserver.flowcontrol.config import default_inflight
from hakube.apiserver.flowcontrol.configfile import apply_file


def add_flags(p: argparse.ArgumentParser) -> None:
    defaults = Settings()
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=default_inflight(),
        help="API requests running at once, shared by the priority levels by their "
        f"shares (default {default_inflight()} on this machine: 150 per core, at least "
        "300); 0 turns priority and fairness off",
    )
    p.add_argument(
        "--flow-queue-wait",
        type=float,
        default=defaults.queue_wait,
        help="seconds a request may wait for a seat before RESOURCE_EXHAUSTED "
        f"({defaults.queue_wait:g})",
    )
    p.add_argument(
        "--flow-queue-length",
        type=int,
        default=0,
        help="requests one fair queue holds (default: each level's own, 50)",
    )
    p.add_argument(
        "--flow-config",
        default="",
        help="YAML file of extra priority levels and flow schemas (docs/api.md); the same "
        "on every master",
    )
    p.add_argument(
        "--max-watches-per-client",
        type=int,
        default=defaults.max_streams_per_client,
        help="watch streams one client identity may hold open on one master "
        f"({defaults.max_streams_per_client}; 0: no cap)",
    )


def settings(args: argparse.Namespace) -> Settings:
    """The flow-control settings from the flags; ValueError says which one is wrong."""
    s = Settings(
        max_requests_inflight=args.max_requests_inflight,
        queue_wait=args.flow_queue_wait,
        queue_length=args.flow_queue_length,
        max_streams_per_client=args.max_watches_per_client,
    )
    s.validate()
    return apply_file(s, args.flow_config) if args.flow_config else s
