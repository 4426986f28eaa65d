"""``python -m hakube.cli.settings_ref > docs/settings.md``: every daemon's settings.

The daemons are the subcommands whose parser carries a settings dataclass
(``hakube.settings.add_flags``); the global settings come first.
"""

from __future__ import annotations

import argparse

from hakube.cli.main import GlobalSettings, build_parser
from hakube.settings import reference


def daemons() -> list[tuple[str, type]]:
    """(command, settings class) of every daemon, in the order ``hakube --help`` lists them."""
    parser, _ = build_parser()
    out: list[tuple[str, type]] = [("(every command)", GlobalSettings)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                cls = sub.get_default("settings_class")
                if cls is not None:
                    out.append((name, cls))
    return out


if __name__ == "__main__":
    print(reference(daemons()), end="")
