"""``hakube``: run a component (``master``, ...) or a cluster tool.

Subcommands register themselves through ``add_parser(subparsers)`` / ``run(args) -> int`` pairs,
so components stay in their own packages and this file stays a table.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hakube import settings as settings_mod
from hakube.cli import logfmt
from hakube.lifecycle import StartupError

Runner = Callable[[Any], int]
"""A command's runner gets its settings object (a tool with actions: the chosen action's)."""


@dataclass(frozen=True)
class GlobalSettings:
    """Settings of every command, given before it (``hakube --log-level debug master ...``)."""

    log_level: str = settings_mod.setting("info", choices=("debug", "info", "warning", "error"))
    """The least severe log records written to stderr."""
    log_format: str = settings_mod.setting("text", choices=("text", "json"))
    """text: one readable line per record; json: one JSON object per line."""


COMMANDS = {
    "master": "hakube.cli.master_cmd",
    "up": "hakube.cli.up_cmd",
    "keepalived": "hakube.vip.cli",
    "agent": "hakube.agent.cli",
    "dns": "hakube.dns.cli",
    "scheduler": "hakube.cli.scheduler_cmd",
    "controller-manager": "hakube.cli.controller_manager_cmd",
    "proxy": "hakube.cli.proxy_cmd",
    "snapshot": "hakube.cli.snapshot_cmd",
    "members": "hakube.cli.members_cmd",
    "certs": "hakube.cli.certs_cmd",
    "token": "hakube.cli.token_cmd",
    "secrets": "hakube.cli.secrets_cmd",
    "console": "hakube.console.cli",
}
"""Each command and the module whose ``add_parser`` registers it. A module is imported only
when its command runs (or for ``--help``): importing all of them cost every process -- a
master, an agent, each CLI call -- about a second of CPU before it did anything."""

_GLOBAL_VALUE_FLAGS = ("--config", "--log-level", "--log-format")


def command_word(argv: list[str]) -> str | None:
    """The command named on this command line (skipping the global flags and their values),
    or None (no command, ``--help``, or an unknown word)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_VALUE_FLAGS:
            i += 2
            continue
        if word.startswith("-"):
            if word in ("-h", "--help"):
                return None
            i += 1
            continue
        return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """The parser of every command, or of command ``only`` alone (one module imported)."""
    parser = argparse.ArgumentParser(prog="hakube", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML file of settings (env: HAKUBE_CONFIG)")
    settings_mod.add_flags(parser, GlobalSettings)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for name, module in COMMANDS.items():
        if only is None or name == only:
            runners.update(importlib.import_module(module).add_parser(sub))
    return parser, runners


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logfmt.formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


def parse(
    argv: list[str], parser: argparse.ArgumentParser | None = None
) -> tuple[argparse.Namespace, GlobalSettings, Any]:
    """The parsed command line, the global settings, and what the command's runner gets: its
    settings object (flags > HAKUBE_* > config file > defaults, validated). SettingError: one
    line naming the setting."""
    parser = parser or build_parser()[0]
    args = parser.parse_args(argv)
    cls = args.settings_class
    path = args.config or os.environ.get("HAKUBE_CONFIG")
    values = settings_mod.load_config_file(path) if path else {}
    if values.get("kind") == "ClientConfig" and not args.config:
        values, path = {}, None  # HAKUBE_CONFIG also names hakubectl's client config
    top = settings_mod.resolve(GlobalSettings, args, file_values=values, file_name=path or "")
    unknown = settings_mod.unknown_keys(values, GlobalSettings, cls)
    if unknown:
        raise settings_mod.SettingError(f'config file {path}: unknown setting "{unknown[0]}"')
    return args, top, settings_mod.resolve(cls, args, file_values=values, file_name=path or "")


def command_prog(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """``hakube COMMAND [ACTION]`` as far as ``argv`` names them, for an error's first words."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            parser = subs[0].choices[word]
    return parser.prog


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, runners = build_parser(command_word(argv))
    try:
        args, top, command_settings = parse(argv, parser)
    except settings_mod.SettingError as exc:
        print(f"{command_prog(parser, argv)}: {exc}", file=sys.stderr)
        return 2
    setup_logging(top.log_level, top.log_format)
    try:
        return runners[args.command](command_settings)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
