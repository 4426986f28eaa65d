"""OpsService: snapshots and membership changes, served by every master.

* ``SaveSnapshot`` commits a read barrier first, so the snapshot holds every write acknowledged
  before the call, then captures the store at one revision under its lock and streams the file.
* Membership changes run on the leader only (the answer names the leader otherwise; the CLI
  follows it), because only the leader knows which members are connected and caught up, which is
  what the quorum guards need. A change is one Raft configuration entry (pysyncobj's single-server
  change) plus one registry entry in the store with the member's name and API address.
* Removed names are tombstones in the store: ``members add`` refuses them forever, and a master
  that finds its own name removed stops (see hakube.master).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from hakube.api.v1 import ops_pb2
from hakube.apiserver.errors import AlreadyExists, ApiError, FailedPrecondition, Invalid, NotFound
from hakube.apiserver.objects import ObjectAPI
from hakube.store import fsm as store
from hakube.store import ops as store_ops
from hakube.store import snapshot
from hakube.store.fsm import StoreFSM
from hakube.store.raft import MembershipError, RaftNode, check_hostport

OPS_SERVICE = "hakube.api.v1.OpsService"
CHUNK_BYTES = 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def quorum(n: int) -> int:
    """Votes needed among n voters."""
    return n // 2 + 1


async def _listening(address: str) -> bool:
    """Whether something accepts TCP connections at HOST:PORT (within a second)."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class OpsServicer:
    """Handlers of OpsService for one master."""

    def __init__(
        self,
        *,
        name: str,
        raft_address: str,
        api_address: str,
        fsm: StoreFSM,
        raft: RaftNode,
        api: ObjectAPI,
    ) -> None:
        self.name = name
        self.raft_address = raft_address
        self.api_address = api_address
        self.fsm = fsm
        self.raft = raft
        self.api = api
        self._change_lock = asyncio.Lock()
        self.authenticate: Callable[[str, grpc.aio.ServicerContext], object] | None = None

    # -- snapshot -----------------------------------------------------------------------------

    async def snapshot_bytes(self) -> bytes:
        await self.api.barrier()
        state = self.fsm.capture()
        st = self.raft.status()
        members = [
            {"name": m.name, "raft": m.raft_address, "api": m.api_address}
            for m in self.members().members
            if m.voter
        ]
        return await asyncio.to_thread(
            snapshot.encode,
            state,
            term=st.get("raft_term", 0),
            raft_index=st.get("last_applied", 0),
            created_by=self.name,
            members=members,
        )

    async def save_snapshot(
        self, raw: bytes, ctx: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        try:
            if self.authenticate is not None:
                self.authenticate("SaveSnapshot", ctx)
            data = await self.snapshot_bytes()
        except ApiError as exc:
            await ctx.abort(exc.code, f"snapshot not taken: {exc.message}")
            return
        for pos in range(0, len(data), CHUNK_BYTES):
            yield ops_pb2.SnapshotChunk(data=data[pos : pos + CHUNK_BYTES]).SerializeToString()

    # -- members --------------------------------------------------------------------------------

    def members(self) -> ops_pb2.ListMembersResponse:
        raft = self.raft
        st = raft.status()
        with self.fsm.lock:
            registry = dict(self.fsm.members)
            removed = sorted(self.fsm.removed)
            cluster_id = self.fsm.cluster_id
        by_addr = {addr: (n, api) for n, (addr, api) in registry.items()}
        leader = raft.leader_name()
        last = raft.last_log_index()
        progress = raft.progress()
        resp = ops_pb2.ListMembersResponse(
            answered_by=self.name,
            leader=leader,
            term=st.get("raft_term", 0),
            last_log_index=last,
            removed=removed,
            cluster_id=cluster_id,
        )
        voters = {self.raft_address} | raft.raft_peers()
        named = [
            (by_addr.get(a, (raft.addr_to_name.get(a, a), ""))[0], a) for a in voters | set(by_addr)
        ]
        for _, addr in sorted(named):
            name, api = by_addr.get(addr, (raft.addr_to_name.get(addr, addr), ""))
            me = addr == self.raft_address
            info = ops_pb2.MemberInfo(
                name=name,
                raft_address=addr,
                api_address=api,
                voter=addr in voters,
                registered=addr in by_addr,
                leader=leader == name and bool(leader),
                connected=me or raft.is_connected(addr),
                last_contact_seconds=0.0 if me else -1.0,
            )
            if me and raft.is_leader():
                info.match_index = last
            elif addr in progress:
                match, seen = progress[addr]
                info.match_index = match
                info.lag = max(0, last - match)
                info.last_contact_seconds = seen
            resp.members.append(info)
        return resp

    def _leader_only(self) -> None:
        if not self.raft.is_leader():
            leader = self.raft.leader_name()
            api = self.fsm.members.get(leader, ("", ""))[1]
            where = f"{leader} (api {api})" if api else (leader or "unknown")
            raise FailedPrecondition(
                f"{self.name} is not the leader; send membership changes to the leader: {where}"
            )

    def _connected_voters(self, exclude: str = "") -> tuple[int, int]:
        """(voters, connected voters that answered recently) excluding ``exclude``."""
        peers = self.raft.raft_peers() - {exclude}
        progress = self.raft.progress()
        # Answers arrive every ~0.1 s; allow for a loaded machine before calling one dead.
        timeout = max(3.0, 2 * self.raft.settings.election_timeout_max)
        alive = sum(
            1
            for a in peers
            if self.raft.is_connected(a) and 0 <= progress.get(a, (0, -1.0))[1] < timeout
        )
        return len(peers) + 1, alive + 1

    async def _propose_member(self, op: store_ops.StoreOp) -> store.Result:
        return await self.api.propose(op)

    async def _raft_change(self, start: Callable[[], Any], what: str) -> None:
        try:
            await asyncio.wait_for(asyncio.wrap_future(start()), timeout=10)
        except MembershipError as exc:
            raise FailedPrecondition(
                f"{what} refused by Raft ({exc}); another membership change "
                "may still be committing: retry in a moment"
            ) from exc
        except TimeoutError as exc:
            raise FailedPrecondition(
                f"{what}: not committed within 10s (outcome unknown; check `hakube members list`)"
            ) from exc

    async def add_member(self, req: ops_pb2.AddMemberRequest) -> ops_pb2.MemberChangeResponse:
        start = time.monotonic()
        name, raft_addr, api_addr = req.name, req.raft_address, req.api_address
        if not _NAME.match(name):
            raise Invalid(
                f"member name \"{name}\" is invalid: use lower-case letters, digits, '-' and '.'"
            )
        for what, value in (("raft address", raft_addr), ("api address", api_addr)):
            try:
                check_hostport(what, value)
            except ValueError as exc:
                raise Invalid(f"member {name}: {exc}") from exc
        async with self._change_lock:
            self._leader_only()
            if name in self.fsm.removed:
                raise FailedPrecondition(
                    f'member name "{name}" belonged to a removed member; '
                    "names are never reused: pick a new name"
                )
            current = self.fsm.members.get(name)
            voters = {self.raft_address} | self.raft.raft_peers()
            if current is not None and current[0] != raft_addr:
                raise AlreadyExists(
                    f'member "{name}" already exists with raft address {current[0]}'
                )
            for other, (addr, _) in self.fsm.members.items():
                if addr == raft_addr and other != name:
                    raise AlreadyExists(
                        f'raft address {raft_addr} is already used by member "{other}"'
                    )
            if raft_addr in voters and current is not None:
                return self._answer(f'member "{name}" is already a voter', start)
            # etcd's rule: counting the new member as started, the connected voters must
            # still make a quorum of the grown cluster.
            n, alive = self._connected_voters()
            if alive + 1 < quorum(n + 1):
                raise FailedPrecondition(
                    f'adding "{name}" would make {n + 1} voters needing {quorum(n + 1)} for a '
                    f"quorum, but only {alive} of the current {n} are connected: repair or "
                    "remove the missing members first"
                )
            if alive < quorum(n + 1) and not await _listening(raft_addr):
                # pysyncobj applies a configuration entry when it is appended, so this entry
                # must be acknowledged by a quorum of the grown cluster, which needs the new
                # member: without it running, the cluster would stall.
                raise FailedPrecondition(
                    f'start "{name}" first: with {alive} of {n} voters connected, the grown '
                    f"cluster needs it to reach a quorum of {quorum(n + 1)}, but nothing "
                    f"listens on {raft_addr}"
                )
            res = await self._propose_member(store_ops.MemberAdd(name, raft_addr, api_addr))
            if res[0] != store.OK:
                raise FailedPrecondition(f'member "{name}" not registered: {res[0]}')
            if raft_addr not in voters:
                await self._raft_change(lambda: self.raft.add_member(raft_addr), f'adding "{name}"')
        peers = ",".join(
            f"{m.name}={m.raft_address}"
            for m in self.members().members
            if m.voter and m.name != name
        )
        return self._answer(
            f'added "{name}" ({raft_addr}); if it is not running yet, start it now on an empty '
            f"data dir with --name {name} --raft-listen {raft_addr} --api-listen {api_addr} "
            f"--peers {peers} "
            "(until it has caught up the cluster tolerates one failure less)",
            start,
        )

    async def remove_member(self, req: ops_pb2.RemoveMemberRequest) -> ops_pb2.MemberChangeResponse:
        start = time.monotonic()
        name = req.name
        async with self._change_lock:
            self._leader_only()
            listed = {m.name: m for m in self.members().members}
            target = listed.get(name)
            if target is None:
                if name in self.fsm.removed:
                    return self._answer(f'member "{name}" was already removed', start)
                raise NotFound(f'member "{name}" not found (see `hakube members list`)')
            if target.raft_address == self.raft_address:
                raise FailedPrecondition(
                    f'"{name}" is the leader: run `hakube members '
                    "transfer-leader` first (the CLI does this for you)"
                )
            if target.voter:
                n, alive = self._connected_voters(exclude=target.raft_address)
                if n - 1 < 1 or alive < quorum(n):
                    raise FailedPrecondition(
                        f'removing "{name}" would leave {n} voters needing {quorum(n)} for a '
                        f"quorum, but only {alive} of them are connected: refused"
                    )
                await self._raft_change(
                    lambda: self.raft.remove_member(target.raft_address), f'removing "{name}"'
                )
            res = await self._propose_member(store_ops.MemberRemove(name, target.raft_address))
            if res[0] != store.OK:
                raise FailedPrecondition(
                    f'member "{name}" removed from Raft but its tombstone '
                    f"was not recorded ({res[0]}): run the removal again"
                )
        return self._answer(
            f'removed "{name}" ({target.raft_address}); its name will not be '
            "accepted again; wipe its data dir before reusing the host",
            start,
        )

    async def transfer_leader(
        self, req: ops_pb2.TransferLeaderRequest
    ) -> ops_pb2.MemberChangeResponse:
        start = time.monotonic()
        timeout = req.timeout_seconds or 5.0
        async with self._change_lock:
            self._leader_only()
            address: str | None = None
            if req.name:
                if req.name == self.name:
                    return self._answer(f'"{self.name}" is already the leader', start)
                found = [m for m in self.members().members if m.name == req.name and m.voter]
                if not found:
                    raise NotFound(
                        f'member "{req.name}" is not a voter (see `hakube members list`)'
                    )
                address = found[0].raft_address
            deadline = start + timeout
            last_error = "no caught-up connected member"
            while time.monotonic() < deadline:
                if self.raft.is_leader():
                    try:
                        await asyncio.wrap_future(self.raft.transfer_leadership(address))
                    except MembershipError as exc:  # target not caught up yet: try again
                        last_error = str(exc)
                await asyncio.sleep(0.02)
                leader = self.raft.leader_name()
                if leader and leader != self.name and (not req.name or leader == req.name):
                    return self._answer(f'leadership moved from "{self.name}" to "{leader}"', start)
            raise FailedPrecondition(
                f"leadership did not move within {timeout:g}s "
                f"({last_error}); the leader is "
                f"{self.raft.leader_name() or 'unknown'}"
            )

    def _answer(self, message: str, start: float) -> ops_pb2.MemberChangeResponse:
        return ops_pb2.MemberChangeResponse(
            message=message, members=self.members(), seconds=time.monotonic() - start
        )

    # -- wiring ---------------------------------------------------------------------------------

    def handlers(
        self,
        unary: Callable[[str, Callable[[Any], Awaitable[Any]], type], grpc.RpcMethodHandler],
        authenticate: Callable[[str, grpc.aio.ServicerContext], object],
    ) -> list[grpc.GenericRpcHandler]:
        """``unary`` is ApiServer.unary (authentication, decoding, error mapping, metrics);
        ``authenticate`` is ApiServer.authenticate, for the streaming snapshot."""
        self.authenticate = authenticate

        async def list_members(_req: Any) -> Any:
            return self.members()

        methods = {
            "SaveSnapshot": grpc.unary_stream_rpc_method_handler(self.save_snapshot),
            "ListMembers": unary("ListMembers", list_members, ops_pb2.ListMembersRequest),
            "AddMember": unary("AddMember", self.add_member, ops_pb2.AddMemberRequest),
            "RemoveMember": unary("RemoveMember", self.remove_member, ops_pb2.RemoveMemberRequest),
            "TransferLeader": unary(
                "TransferLeader", self.transfer_leader, ops_pb2.TransferLeaderRequest
            ),
        }
        return [grpc.method_handlers_generic_handler(OPS_SERVICE, methods)]
