"""``hakubectl``: kubectl's everyday commands against a hakube cluster.

This module holds the parser, the shared context and the error policy; the commands live in
ctl_read.py (get, describe, api-resources, cluster status) and ctl_write.py (apply, create,
delete, scale, label).

Error policy: every failure prints one line on stderr that names the object and the problem,
and the exit status is non-zero - 1 for failures, 2 for a command line that does not parse.
Server refusals read like kubectl's (``Error from server (NotFound): pods "web" not found``);
connection failures list the endpoints tried. A command working through several objects
(``apply -f dir/``) reports each failure as it happens, carries on, and exits 1 at the end.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from hakube.api import kinds
from hakube.api.kinds import Kind
from hakube.cli.manifests import ManifestError
from hakube.client import Client, HakubeError, Unavailable
from hakube.client.config import ConfigError, load_client_config

Command = Callable[["Ctx"], int]


class UsageError(ValueError):
    """A command line that parses but does not make sense (``get`` with no kind, ...)."""


class CommandError(Exception):
    """A failure found before talking to the server (unknown kind, ...): ``error: ...``."""


def lookup_kind(word: str) -> Kind:
    """A kind from what a user types: ``po``, ``pods``, ``Pod``, ``deployment.apps``."""
    kind = kinds.lookup(word) or (kinds.lookup(word.split(".", 1)[0]) if "." in word else None)
    if kind is None:
        raise CommandError(f"the server doesn't have a resource type \"{word}\" (see "
                           "'hakubectl api-resources')")
    return kind


ALL = ("Pod", "Service", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet", "Job",
       "CronJob", "HorizontalPodAutoscaler")
"""What ``get all`` shows, as in kubectl."""


def targets(words: list[str]) -> list[tuple[Kind, list[str]]]:
    """``pods``, ``po,svc``, ``pods web db`` or ``pod/web svc/web`` -> [(kind, names)]."""
    if not words:
        raise UsageError("name a resource type (e.g. pods, deploy, svc) or TYPE/NAME")
    if any("/" in w for w in words):
        out: list[tuple[Kind, list[str]]] = []
        for w in words:
            word, _, name = w.partition("/")
            if not name or "/" in name:
                raise UsageError(f'"{w}" is not TYPE/NAME; with TYPE/NAME arguments, every '
                                 "argument must have that form")
            kind = lookup_kind(word)
            if out and out[-1][0] is kind:
                out[-1][1].append(name)
            else:
                out.append((kind, [name]))
        return out
    kinds_: list[Kind] = []
    for word in filter(None, words[0].split(",")):
        kinds_ += [kinds.BY_NAME[n] for n in ALL] if word == "all" else [lookup_kind(word)]
    if len(kinds_) > 1 and len(words) > 1:
        raise UsageError("names can only be given with a single resource type")
    return [(k, list(words[1:])) for k in kinds_]


def parse_duration(text: str) -> float:
    """``30``, ``30s``, ``1m``, ``1m30s``, ``500ms`` -> seconds (argparse type)."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise argparse.ArgumentTypeError(f'"{text}" is not a duration (examples: 30s, 2m, 1h)')
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


@dataclass
class Ctx:
    """What every command gets: its arguments, output streams and a lazily made client."""

    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    failed: bool = False
    _client: Client | None = None
    _namespace: str = ""

    def client(self) -> Client:
        if self._client is None:
            a = self.args
            cfg = load_client_config(a.config, server=a.server, namespace=a.namespace,
                                     timeout=a.timeout)
            self._namespace = cfg.namespace
            self._client = Client(cfg.servers, credentials=cfg.credentials(),
                                  namespace=cfg.namespace, timeout=cfg.timeout)
        return self._client

    @property
    def namespace(self) -> str:
        """The namespace a command works in: ``-n``, else the config's, else default."""
        self.client()
        return self._namespace or "default"

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        """Report one failure and carry on; the command will exit 1."""
        self.failed = True
        print(text, file=self.err, flush=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def error_line(exc: Exception, *, context: str = "") -> str:
    """The one line printed for an exception (``context`` says what was being done)."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, Unavailable):
        return f"error: {prefix}{exc.message}"
    if isinstance(exc, HakubeError):
        if exc.code is None:
            return f"error: {prefix}{exc.message}"
        return f"Error from server ({type(exc).__name__}): {prefix}{exc.message}"
    return f"error: {prefix}{exc}"


def _common(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options every command takes, before or after its name. On subcommands they default to
    SUPPRESS so a value given before the command name is not reset by the subparser."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--config", metavar="FILE", help="client config file (env HAKUBE_CONFIG; "
                   "default ~/.hakube/config)", **d)
    p.add_argument("-s", "--server", metavar="ADDR[,ADDR...]",
                   help="master address(es), overriding the config (env HAKUBE_SERVER)", **d)
    p.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: from the "
                   "config, else default)", **d)
    p.add_argument("--timeout", "--request-timeout", dest="timeout", type=parse_duration,
                   metavar="DURATION", help="how long one request may take, retries across "
                   "masters included (30s, 2m; default: the config's, else 30s)", **d)


ORDER = ("apply", "create", "get", "describe", "delete", "scale", "label", "rollout",
         "autoscale", "logs", "exec", "top", "cluster", "api-resources", "taint", "cordon",
         "uncordon", "drain", "auth")
"""The commands, in the order ``--help`` lists them."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    from hakube.cli import ctl_autoscale, ctl_node, ctl_nodes, ctl_read, ctl_rollout, ctl_write
    from hakube.cli.ctl_auth import COMMANDS as AUTH_COMMANDS

    parser = argparse.ArgumentParser(
        prog="hakubectl", description="Control a hakube cluster (kubectl's commands).",
        epilog="KIND may be a name, plural or short name (po, deploy, svc, ns); many commands "
               "also take KIND/NAME.")
    _common(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    table = {**ctl_write.COMMANDS, **ctl_read.COMMANDS, **ctl_rollout.COMMANDS,
             **ctl_autoscale.COMMANDS, **ctl_node.COMMANDS, **ctl_nodes.COMMANDS, **AUTH_COMMANDS}
    assert set(table) == set(ORDER), "every command must be listed in ORDER"
    commands: dict[str, Command] = {}
    for name in ORDER:
        help_text, add_args, run = table[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, sub=True)
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


def main(argv: list[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
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


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the command modules raise the
    # exception classes of hakube.cli.ctl, which main must be the one to catch.
    from hakube.cli import ctl as _ctl

    sys.exit(_ctl.cli())
