"""What every ``hakubectl`` command shares: the context (arguments, output, a lazily made
client), kind and target parsing, the options every command takes, the one-line error policy
and the get-change-update loop. The command modules build on this and never on each other."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from hakube.api import kinds
from hakube.api.kinds import Kind
from hakube.client import Client, HakubeError, Unavailable, edit
from hakube.client.config import load_client_config

Command = Callable[["Ctx"], int]


class UsageError(ValueError):
    """A command line that parses but does not make sense (``get`` with no kind, ...)."""


class CommandError(Exception):
    """A failure found before talking to the server (unknown kind, ...): ``error: ...``."""


def lookup_kind(word: str) -> Kind:
    """A kind from what a user types: ``po``, ``pods``, ``Pod``, ``deployment.apps``."""
    kind = kinds.lookup(word) or (kinds.lookup(word.split(".", 1)[0]) if "." in word else None)
    if kind is None:
        raise CommandError(
            f"the server doesn't have a resource type \"{word}\" (see 'hakubectl api-resources')"
        )
    return kind


ALL = (
    "Pod",
    "Service",
    "DaemonSet",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
)
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
                raise UsageError(
                    f'"{w}" is not TYPE/NAME; with TYPE/NAME arguments, every '
                    "argument must have that form"
                )
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
    _warned: set[str] = field(default_factory=set)

    def client(self) -> Client:
        if self._client is None:
            a = self.args
            cfg = load_client_config(
                a.config, server=a.server, namespace=a.namespace, timeout=a.timeout
            )
            self._namespace = cfg.namespace
            self._client = Client(
                cfg.servers,
                credentials=cfg.credentials(),
                namespace=cfg.namespace,
                timeout=cfg.timeout,
                on_warning=self.warn,
            )
        return self._client

    def warn(self, text: str) -> None:
        """Print a warning the server sent, as kubectl does (each text once per command: an
        apply's dry-run probe and its update both carry it); the exit status is unchanged."""
        if text not in self._warned:
            self._warned.add(text)
            print(f"Warning: {text}", file=self.err, flush=True)

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


def add_common_options(p: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options every command takes, before or after its name. On subcommands they default to
    SUPPRESS so a value given before the command name is not reset by the subparser."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument(
        "--config",
        metavar="FILE",
        help="client config file (env HAKUBE_CONFIG; default ~/.hakube/config)",
        **d,
    )
    p.add_argument(
        "-s",
        "--server",
        metavar="ADDR[,ADDR...]",
        help="master address(es), overriding the config (env HAKUBE_SERVER)",
        **d,
    )
    p.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace (default: from the config, else default)",
        **d,
    )
    p.add_argument(
        "--timeout",
        "--request-timeout",
        dest="timeout",
        type=parse_duration,
        metavar="DURATION",
        help="how long one request may take, retries across "
        "masters included (30s, 2m; default: the config's, else 30s)",
        **d,
    )


def modify(ctx: Ctx, kind: Kind, name: str, change: Callable[[Any], bool]) -> Any | None:
    """``hakube.client.edit.modify`` in the command's namespace."""
    return edit.modify(ctx.client(), kind, name, change, namespace=ctx.namespace)


SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
"""The kinds ``scale`` and ``autoscale`` work on."""
