"""``hakubectl auth can-i`` and ``hakubectl auth whoami``.

``can-i VERB RESOURCE [NAME]`` asks the masters (AccessReview), prints ``yes`` or ``no`` and
exits 0 or 1, as kubectl does. RESOURCE is a plural, kind or short name, optionally with a
subresource (``pods/log``) or a group (``deployments.apps``). ``--as``/``--as-group`` ask about
another identity, which the masters allow only to callers with the impersonate verb.
"""

from __future__ import annotations

import argparse

from hakube.cli.ctl.common import Ctx, UsageError, add_common_options
from hakube.client.authz import access_review, who_am_i


def add_auth(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="auth_command", metavar="SUBCOMMAND", required=True)
    can = sub.add_parser("can-i", help="whether an action is allowed (prints yes or no)")
    can.add_argument(
        "verb", metavar="VERB", help="get, list, watch, create, update, delete, ... or *"
    )
    can.add_argument(
        "resource",
        metavar="RESOURCE",
        help="pods, pods/log, deployments.apps, members.hakube.io, ...",
    )
    can.add_argument("name", metavar="NAME", nargs="?", default="")
    can.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="ask about all namespaces (cluster scope)",
    )
    can.add_argument("--subresource", default="", help="e.g. log, status, exec")
    can.add_argument(
        "--as",
        dest="as_user",
        default="",
        metavar="USER",
        help="ask about USER (needs the impersonate verb)",
    )
    can.add_argument(
        "--as-group",
        dest="as_groups",
        action="append",
        default=[],
        metavar="GROUP",
        help="with --as: a group of the user (repeatable)",
    )
    who = sub.add_parser("whoami", help="the user and groups the masters see for you")
    for p_ in (can, who):
        add_common_options(p_, sub=True)  # -n, --config, ... after the subcommand too


def split_resource(text: str) -> tuple[str, str, str]:
    """``deployments.apps/scale`` -> (deployments, apps, scale)."""
    resource, _, sub = text.partition("/")
    resource, _, group = resource.partition(".")
    if not resource:
        raise UsageError(f'"{text}" names no resource')
    return resource, group, sub


def run_auth(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.client()
    if a.auth_command == "whoami":
        me = who_am_i(client)
        ctx.print(f"user: {me.user}")
        ctx.print(f"groups: {', '.join(me.groups) or '(none)'}")
        return 0
    if a.as_groups and not a.as_user:
        raise UsageError("--as-group needs --as")
    resource, group, sub = split_resource(a.resource)
    answer = access_review(
        client,
        a.verb,
        resource,
        name=a.name,
        group=group,
        subresource=a.subresource or sub,
        namespace="" if a.all_namespaces else ctx.namespace,
        user=a.as_user,
        groups=tuple(a.as_groups),
    )
    ctx.print("yes" if answer.allowed else "no")
    return 0 if answer.allowed else 1


COMMANDS = {
    "auth": ("inspect authorization: can-i VERB RESOURCE [NAME], whoami", add_auth, run_auth),
}
