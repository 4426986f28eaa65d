"""The tools' flags (``hakube up``, ``certs``, ...) from ``HAKUBE_*`` variables or a config file.

The daemons' settings are dataclasses (``hakube.settings``), resolved by ``hakube.cli.main``;
this fills a tool's plain argparse options by the same rules.

Precedence: command-line flag > environment variable > config file > built-in default. The
environment name of ``--api-listen`` is ``HAKUBE_API_LISTEN``; the config-file key is
``api-listen`` (or ``api_listen``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from hakube.settings import SettingError
from hakube.settings import load_config_file as _load

ConfigError = SettingError
"""A config file or environment value that cannot be used."""


def env_name(dest: str) -> str:
    return "HAKUBE_" + dest.upper()


def load_config_file(path: str) -> dict[str, Any]:
    return {k.replace("-", "_"): v for k, v in _load(path).items()}


def parse_with_env(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, filling unset options from the environment and ``--config``."""
    args = parser.parse_args(argv)
    explicit = _explicit_dests(parser, argv)
    file_values: dict[str, Any] = {}
    config_path = getattr(args, "config", None) or os.environ.get("HAKUBE_CONFIG")
    if config_path:
        file_values = load_config_file(config_path)
        if file_values.get("kind") == "ClientConfig" and not getattr(args, "config", None):
            # HAKUBE_CONFIG also names hakubectl's client config, which holds no flags.
            file_values = {}
    actions = _actions(parser, args)
    known = {a.dest: a for a in actions if not a.dest.startswith("s__")}
    generated = {a.dest.split("__")[-1] for a in actions if a.dest.startswith("s__")}
    for key in file_values:
        if key not in known and key not in generated and key != "config":
            raise ConfigError(f'config file {config_path}: unknown setting "{key}"')
    for dest, action in known.items():
        if dest in explicit or dest in ("help", "config", "command"):
            continue
        raw = os.environ.get(env_name(dest))
        source = f"environment variable {env_name(dest)}"
        if raw is None and dest in file_values:
            raw, source = file_values[dest], f"config file {config_path}"
        if raw is None:
            continue
        setattr(args, dest, _convert(action, raw, source))
    return args


def _actions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[argparse.Action]:
    """Options of the parser and of every subcommand chosen in ``args``, at any depth."""
    actions = [a for a in parser._actions if a.option_strings]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            sub = a.choices.get(getattr(args, a.dest, None) or "")
            if sub is not None:
                actions += _actions(sub, args)
    return actions


def _explicit_dests(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """Destinations whose option appears on the command line."""
    words = argv if argv is not None else []
    given = {w.split("=", 1)[0] for w in words if w.startswith("-")}
    args = parser.parse_args(argv)
    return {a.dest for a in _actions(parser, args) if given & set(a.option_strings)}


def _convert(action: argparse.Action, raw: Any, source: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        if isinstance(raw, bool):
            return raw
        value = str(raw).lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{source}: {raw!r} is not a boolean")
    if action.type is not None and callable(action.type):
        try:
            return action.type(raw if not isinstance(raw, (int, float)) else str(raw))
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc
    return raw if isinstance(raw, str) else str(raw)
