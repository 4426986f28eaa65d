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

from google.protobuf.json_format import MessageToDict

from hakube.api.v1 import ops_pb2
from hakube.cli.opsclient import OpsError, list_members, on_leader, split_servers


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
        servers = split_servers(args.server)
        cmd = args.members_command
        if cmd == "list":
            return _list(servers, args)
        if cmd == "add":
            if not args.raft or not args.api:
                raise OpsError("members add needs --raft HOST:PORT and --api HOST:PORT")
            req = ops_pb2.AddMemberRequest(
                name=args.name, raft_address=args.raft, api_address=args.api
            )
            resp = on_leader(
                servers, lambda s: s.AddMember(req, timeout=args.timeout), args.timeout
            )
        elif cmd == "remove":
            resp = _remove(servers, args.name, args.timeout)
        else:
            treq = ops_pb2.TransferLeaderRequest(
                name=args.name, timeout_seconds=min(args.timeout, 10.0)
            )
            resp = on_leader(
                servers, lambda s: s.TransferLeader(treq, timeout=args.timeout), args.timeout
            )
        print(f"{resp.message} ({resp.seconds:.2f}s)")
        return 0
    except OpsError as exc:
        print(f"hakube members {args.members_command}: {exc}", file=sys.stderr)
        return 1


def _remove(servers: list[str], name: str, timeout: float) -> ops_pb2.MemberChangeResponse:
    req = ops_pb2.RemoveMemberRequest(name=name)
    deadline = time.monotonic() + timeout
    while True:
        members = list_members(servers, timeout)
        if members.leader != name:
            return on_leader(servers, lambda s: s.RemoveMember(req, timeout=timeout), timeout)
        if time.monotonic() > deadline:
            raise OpsError(f'"{name}" is still the leader after {timeout:g}s')
        on_leader(
            servers,
            lambda s: s.TransferLeader(
                ops_pb2.TransferLeaderRequest(timeout_seconds=5.0), timeout=timeout
            ),
            timeout,
        )


def _list(servers: list[str], args: argparse.Namespace) -> int:
    resp = list_members(servers, args.timeout)
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
