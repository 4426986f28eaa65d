"""``hakube``: run a component (``master``, ...) or a cluster tool.

Subcommands register themselves through ``add_parser(subparsers)`` / ``run(args) -> int`` pairs,
so components stay in their own packages and this file stays a table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from hakube.agent import cli as agent_cli
from hakube.cli import (
    certs_cmd,
    controller_manager_cmd,
    logfmt,
    master_cmd,
    members_cmd,
    scheduler_cmd,
    secrets_cmd,
    snapshot_cmd,
    token_cmd,
    up_cmd,
)
from hakube.cli.config import ConfigError, parse_with_env
from hakube.lifecycle import StartupError
from hakube.vip import cli as vip_cli

Runner = Callable[[argparse.Namespace], int]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    parser = argparse.ArgumentParser(prog="hakube", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML file of flag values (env: HAKUBE_CONFIG)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for module in (
        master_cmd,
        up_cmd,
        vip_cli,
        agent_cli,
        scheduler_cmd,
        controller_manager_cmd,
        snapshot_cmd,
        members_cmd,
        certs_cmd,
        token_cmd,
        secrets_cmd,
    ):
        runners.update(module.add_parser(sub))
    return parser, runners


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logfmt.formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, runners = build_parser()
    try:
        args = parse_with_env(parser, argv)
    except ConfigError as exc:
        print(f"hakube: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, args.log_format)
    try:
        return runners[args.command](args)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
