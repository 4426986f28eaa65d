"""``hakubectl``: kubectl's everyday commands against a hakube cluster.

This package's face holds the parser and the program; common.py the shared context and the
error policy; the commands live in read.py (get, describe, api-resources, cluster status),
write.py (apply, create, delete, scale, label), rollout.py, autoscale.py, node.py (logs, exec,
top), nodes.py (taint, cordon, uncordon, drain) and auth.py (auth can-i, auth whoami).

Error policy: every failure prints one line on stderr that names the object and the problem,
and the exit status is non-zero - 1 for failures, 2 for a command line that does not parse.
Server refusals read like kubectl's (``Error from server (NotFound): pods "web" not found``);
connection failures list the endpoints tried. A command working through several objects
(``apply -f dir/``) reports each failure as it happens, carries on, and exits 1 at the end.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, TextIO

from hakube.cli.ctl import auth, autoscale, node, nodes, read, rollout, write
from hakube.cli.ctl.common import (
    Command,
    CommandError,
    Ctx,
    UsageError,
    add_common_options,
    error_line,
)
from hakube.cli.manifests import ManifestError
from hakube.client import HakubeError
from hakube.client.config import ConfigError

ORDER = (
    "apply",
    "create",
    "get",
    "describe",
    "delete",
    "scale",
    "label",
    "rollout",
    "autoscale",
    "logs",
    "exec",
    "top",
    "cluster",
    "api-resources",
    "taint",
    "cordon",
    "uncordon",
    "drain",
    "auth",
)
"""The commands, in the order ``--help`` lists them."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="hakubectl",
        description="Control a hakube cluster (kubectl's commands).",
        epilog="KIND may be a name, plural or short name (po, deploy, svc, ns); many commands "
        "also take KIND/NAME.",
    )
    add_common_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    table = {
        **write.COMMANDS,
        **read.COMMANDS,
        **rollout.COMMANDS,
        **autoscale.COMMANDS,
        **node.COMMANDS,
        **nodes.COMMANDS,
        **auth.COMMANDS,
    }
    assert set(table) == set(ORDER), "every command must be listed in ORDER"
    commands: dict[str, Command] = {}
    for name in ORDER:
        help_text, add_args, run = table[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_common_options(p, sub=True)
        add_args(p)
        commands[name] = run
    return parser, commands


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cli() -> int:
    """The ``hakubectl`` program: die quietly when piped into ``head``, let SIGTERM end a watch
    like Ctrl-C, then ``main``. Only the program changes signal handling: ``main`` called as a
    function (tests, embedding programs) must not make the caller's process die of SIGPIPE on
    its next write to a closed socket."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, _interrupt)
    return main()


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    ctx = Ctx(args, out=out or sys.stdout, err=err or sys.stderr)
    try:
        status = commands[args.command](ctx)
    except UsageError as exc:
        print(f"error: {exc}\nSee 'hakubectl {args.command} -h' for usage.", file=ctx.err)
        return 2
    except (ConfigError, ManifestError, HakubeError, CommandError) as exc:
        print(error_line(exc), file=ctx.err)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()
    return 1 if ctx.failed else status
