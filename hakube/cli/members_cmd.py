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
from typing import TypeVar

from google.protobuf.json_format import MessageToDict

from hakube.api.v1 import ops_pb2
from hakube.client import errors
from hakube.client.ops import OpsClient, split_servers

T = TypeVar("T")


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    top = sub.add_parser("members", help="list and change the masters of the cluster")
    actions = top.add_subparsers(dest="members_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-s", "--server", help="master API address(es), HOST:PORT[,...]")
        p.add_argument("--timeout", type=float, default=15.0, help="seconds (15)")

    p = actions.add_parser("list", help="members with their role, contact and log lag")
    common(p)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = actions.add_parser("add", help="add a master (start it right after)")
    common(p)
    p.add_argument("name")
    p.add_argument("--raft", required=False, help="the new master's Raft HOST:PORT")
    p.add_argument("--api", required=False, help="the new master's API HOST:PORT")
    p = actions.add_parser("remove", help="remove a master (refused if quorum would be lost)")
    common(p)
    p.add_argument("name")
    p = actions.add_parser("transfer-leader", help="move leadership (default: best follower)")
    common(p)
    p.add_argument("name", nargs="?", default="")
    return {"members": run}


def run(args: argparse.Namespace) -> int:
    try:
        cmd = args.members_command
        if cmd == "add" and not (args.raft and args.api):
            raise errors.HakubeError("members add needs --raft HOST:PORT and --api HOST:PORT")
        with OpsClient(split_servers(args.server), timeout=args.timeout) as ops:
            if cmd == "list":
                return _list(ops, args)
            if cmd == "add":
                req = ops_pb2.AddMemberRequest(
                    name=args.name, raft_address=args.raft, api_address=args.api
                )
                resp = _while_committing(
                    ops,
                    lambda: ops.on_leader(
                        lambda s, t: s.AddMember(req, timeout=t), what="add member"
                    ),
                )
            elif cmd == "remove":
                resp = _remove(ops, args.name)
            else:
                treq = ops_pb2.TransferLeaderRequest(
                    name=args.name, timeout_seconds=min(args.timeout, 10.0)
                )
                resp = ops.on_leader(
                    lambda s, t: s.TransferLeader(treq, timeout=t), what="transfer leadership"
                )
        print(f"{resp.message} ({resp.seconds:.2f}s)")
        return 0
    except errors.HakubeError as exc:
        print(f"hakube members {args.members_command}: {exc}", file=sys.stderr)
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


def _list(ops: OpsClient, args: argparse.Namespace) -> int:
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
