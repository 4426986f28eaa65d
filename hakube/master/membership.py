"""Membership is owned by the data dir, not by flags.

members.json (hakube.store.datadir) names the peers once it exists; this loop keeps it equal to
the Raft configuration, registers this master's addresses in the replicated member registry,
and stops the master if the registry says it was removed (so a removed member never serves
stale data).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from hakube.apiserver.errors import ApiError
from hakube.apiserver.objects import ObjectAPI
from hakube.master.readiness import Readiness
from hakube.master.settings import MasterSettings, api_advertise
from hakube.store import datadir
from hakube.store import ops as store_ops
from hakube.store.fsm import StoreFSM
from hakube.store.raft import RaftNode

log = logging.getLogger("hakube.master")


class MembershipKeeper:
    """Keeps members.json, the Raft address->name map and the member registry in step."""

    def __init__(
        self,
        settings: MasterSettings,
        fsm: StoreFSM,
        raft: RaftNode,
        membership: datadir.Membership,
        readiness: Readiness,
        on_removed: Callable[[str], None],
    ) -> None:
        """``on_removed(reason)``: this master was removed from the cluster; it must stop."""
        self.s = settings
        self.fsm = fsm
        self.raft = raft
        self.membership = membership
        self.readiness = readiness
        self.on_removed = on_removed

    def sync(self) -> None:
        """Keep members.json and the address->name map equal to the Raft configuration."""
        raft, m = self.raft, self.membership
        with self.fsm.lock:
            registry = dict(self.fsm.members)
            cluster_id = self.fsm.cluster_id
        names = {addr: name for name, addr in m.peers.items()}
        names.update({addr: name for name, (addr, _) in registry.items()})
        names[m.raft] = m.name
        raft.addr_to_name = names
        peers = {names.get(a, a): a for a in raft.raft_peers()}
        cluster_id = cluster_id or m.cluster_id
        if peers != m.peers or cluster_id != m.cluster_id:
            log.info("membership of %s is now %s", m.name, peers)
            self.membership = datadir.Membership(
                name=m.name, raft=m.raft, peers=peers, cluster_id=cluster_id
            )
            datadir.write_members(self.s.data_dir, self.membership)

    async def loop(self, api: ObjectAPI) -> None:
        s = self.s
        advertise = api_advertise(s)
        while True:
            await asyncio.sleep(0.3)
            try:
                self.sync()
            except (OSError, RuntimeError) as exc:  # e.g. a full disk: retried next round
                log.warning("could not record the membership: %s", exc)
                continue
            if s.name in self.fsm.removed:
                self.on_removed(
                    f"hakube master: {s.name} was removed from the cluster; its "
                    f"data dir {s.data_dir} is stale. Wipe it and join as a new "
                    "member under a new name"
                )
                return
            if not self.readiness.quorum_ok:
                continue
            try:
                if self.fsm.members.get(s.name) != (s.raft_listen, advertise):
                    await api.propose(store_ops.MemberSelf(s.name, s.raft_listen, advertise))
                if not self.fsm.cluster_id:
                    await api.propose(
                        store_ops.ClusterId(self.membership.cluster_id or uuid.uuid4().hex[:16])
                    )
            except ApiError as exc:
                log.info("member registration deferred: %s", exc)
