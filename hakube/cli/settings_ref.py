"""``python -m hakube.cli.settings_ref > docs/settings.md``: every command's settings.

A command (``master``) or a tool's action (``certs init``) is a subcommand whose parser carries
a settings dataclass (``hakube.settings.add_flags``); the global settings come first.
"""

from __future__ import annotations

import argparse

from hakube.cli.main import GlobalSettings, build_parser
from hakube.settings import reference


def commands() -> list[tuple[str, type]]:
    """(command, settings class) of every command and action, in the order ``hakube --help``
    lists them (``certs init`` for an action)."""
    parser, _ = build_parser()
    return [("(every command)", GlobalSettings), *_below(parser, "")]


def _below(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, type]]:
    out: list[tuple[str, type]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                cls = sub.get_default("settings_class")
                if cls is not None:
                    out.append((prefix + name, cls))
                out += _below(sub, f"{prefix}{name} ")
    return out


if __name__ == "__main__":
    print(reference(commands()), end="")
