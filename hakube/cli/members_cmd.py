"""``hakube members list|add|remove|transfer-leader``: the masters of a running cluster.

Changes go to the leader (found through any master given with --server). Removing the leader
first moves leadership away, then removes it from the new leader.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.json_format import MessageToDict

from hakube.api.v1 import ops_pb2
from hakube.cli.admin import MastersSettings
from hakube.client import errors
from hakube.client.ops import OpsClient, split_servers
from hakube.settings import add_actions, setting

T = TypeVar("T")


@dataclass(frozen=True)
class Members(MastersSettings):
    """What every ``hakube members`` action takes."""

    timeout: float = setting(15.0, minimum=0)
    """Seconds the action may take."""


@dataclass(frozen=True)
class MembersList(Members):
    """``hakube members list``."""

    output: str = setting("table", aliases=("-o",), choices=("table", "json"))
    """table: for people; json: the whole answer as one object."""


@dataclass(frozen=True)
class MembersAdd(Members):
    """``hakube members add``."""

    name: str = setting("", operand=True, required=True)
    """The new master's name."""
    raft: str = setting("", required=True, metavar="HOST:PORT")
    """The new master's Raft HOST:PORT."""
    api: str = setting("", required=True, metavar="HOST:PORT")
    """The new master's API HOST:PORT."""


@dataclass(frozen=True)
class MembersRemove(Members):
    """``hakube members remove``."""

    name: str = setting("", operand=True, required=True)
    """The master to remove."""


@dataclass(frozen=True)
class MembersTransfer(Members):
    """``hakube members transfer-leader``."""

    name: str = setting("", operand=True)
    """The master to lead (empty: the best follower)."""


ACTIONS: dict[str, tuple[type, str]] = {
    "list": (MembersList, "members with their role, contact and log lag"),
    "add": (MembersAdd, "add a master (start it right after)"),
    "remove": (MembersRemove, "remove a master (refused if quorum would be lost)"),
    "transfer-leader": (MembersTransfer, "move leadership (default: best follower)"),
}


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[Members], int]]:
    add_actions(sub, "members", "list and change the masters of the cluster", ACTIONS)
    return {"members": run}


def run(args: Members) -> int:
    try:
        with OpsClient(split_servers(args.server), timeout=args.timeout) as ops:
            if isinstance(args, MembersList):
                return _list(ops, args)
            if isinstance(args, MembersAdd):
                req = ops_pb2.AddMemberRequest(
                    name=args.name, raft_address=args.raft, api_address=args.api
                )
                resp = _while_committing(
                    ops,
                    lambda: ops.on_leader(
                        lambda s, t: s.AddMember(req, timeout=t), what="add member"
                    ),
                )
            elif isinstance(args, MembersRemove):
                resp = _remove(ops, args.name)
            else:
                assert isinstance(args, MembersTransfer)
                treq = ops_pb2.TransferLeaderRequest(
                    name=args.name, timeout_seconds=min(args.timeout, 10.0)
                )
                resp = ops.on_leader(
                    lambda s, t: s.TransferLeader(treq, timeout=t), what="transfer leadership"
                )
        print(f"{resp.message} ({resp.seconds:.2f}s)")
        return 0
    except errors.HakubeError as exc:
        action = next(n for n, (cls, _) in ACTIONS.items() if cls is type(args))
        print(f"hakube members {action}: {exc}", file=sys.stderr)
        return 1


COMMITTING = "another membership change may still be committing"


def _while_committing(ops: OpsClient, change: Callable[[], T]) -> T:
    """``change``, tried again while Raft refuses it because the previous membership change
    (e.g. the one just made) has not committed yet -- one change at a time is Raft's rule, and
    the wait is short -- until the command's timeout."""
    deadline = time.monotonic() + ops.timeout
    while True:
        try:
            return change()
        except errors.Conflict as exc:
            if COMMITTING not in exc.message or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _remove(ops: OpsClient, name: str) -> ops_pb2.MemberChangeResponse:
    req = ops_pb2.RemoveMemberRequest(name=name)
    deadline = time.monotonic() + ops.timeout
    while True:
        members = ops.list_members()
        if members.leader != name:
            resp: ops_pb2.MemberChangeResponse = _while_committing(
                ops,
                lambda: ops.on_leader(
                    lambda s, t: s.RemoveMember(req, timeout=t), what=f"remove member {name}"
                ),
            )
            return resp
        if time.monotonic() > deadline:
            raise errors.Unavailable(f'"{name}" is still the leader after {ops.timeout:g}s')
        ops.on_leader(
            lambda s, t: s.TransferLeader(
                ops_pb2.TransferLeaderRequest(timeout_seconds=5.0), timeout=t
            ),
            what="transfer leadership",
        )


def _list(ops: OpsClient, args: MembersList) -> int:
    resp = ops.list_members()
    if args.output == "json":
        print(
            json.dumps(
                MessageToDict(
                    resp,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                ),
                indent=2,
            )
        )
        return 0
    rows = [("NAME", "RAFT", "API", "VOTER", "LEADER", "CONNECTED", "LAST-CONTACT", "LAG")]
    for m in resp.members:
        contact = "-" if m.last_contact_seconds < 0 else f"{m.last_contact_seconds:.2f}s"
        lag = str(m.lag) if resp.answered_by == resp.leader else "-"
        rows.append(
            (
                m.name,
                m.raft_address,
                m.api_address or "-",
                _yn(m.voter),
                _yn(m.leader),
                _yn(m.connected),
                contact,
                lag,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if resp.removed:
        print(f"removed (never reused): {', '.join(resp.removed)}")
    print(f"answered by {resp.answered_by}; term {resp.term}; cluster {resp.cluster_id or '-'}")
    return 0


def _yn(b: bool) -> str:
    return "yes" if b else "no"
