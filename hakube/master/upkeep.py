"""A master's background upkeep: the bootstrap, leader-only reconciles, lease expiry, snapshots.

- ``bootstrap``: the standard namespaces and the default roles (before readiness, so components
  never meet an empty RBAC), then the encryption-key check; every master tries, with fixed
  request ids, so the attempts are one write deduplicated by the store.
- ``rbac_defaults_loop``: on the Raft leader only (so the masters do not race each other),
  recreate deleted default roles and restore edited ones.
- ``lease_loop``: the store's lease keeper (tracking only on the leader) proposes the expiry of
  leases whose holders stopped renewing.
- ``snapshot_loop``: scheduled snapshots, kept by every master, so a backup survives the loss of
  any one host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from hakube.api import kinds
from hakube.api.v1 import api_pb2, core_pb2
from hakube.apiserver.authz import defaults as rbac_defaults
from hakube.apiserver.errors import AlreadyExists, ApiError
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.ops import OpsServicer
from hakube.master import keys
from hakube.master.readiness import Readiness
from hakube.master.settings import BOOTSTRAP_NAMESPACES, MasterSettings
from hakube.store import ops as store_ops
from hakube.store.fsm import StoreFSM
from hakube.store.leases import LeaseKeeper
from hakube.store.snapshot import SnapshotError, read_meta
from hakube.store.snapshot import write_bytes as write_snapshot

log = logging.getLogger("hakube.master")


async def bootstrap(
    api: ObjectAPI, fsm: StoreFSM, readiness: Readiness, on_bad_keys: Callable[[str], None]
) -> None:
    """Create the standard namespaces and default roles once, then check the encryption keys
    against the stored Secrets; ``readiness.bootstrapped`` only after both (``on_bad_keys``
    with the one line otherwise)."""
    while True:
        await readiness.wait_quorum()
        try:
            for ns in BOOTSTRAP_NAMESPACES:
                if fsm.get("Namespace", "", ns) is not None:
                    continue
                obj = kinds.wrap(core_pb2.Namespace(metadata={"name": ns}))
                try:
                    await api.create(
                        api_pb2.CreateRequest(object=obj, request_id=f"bootstrap/namespace/{ns}")
                    )
                except AlreadyExists:
                    pass
            await api.barrier()
            await rbac_defaults.reconcile(api)
        except ApiError as exc:
            log.info("bootstrap of namespaces and default roles deferred: %s", exc)
            await asyncio.sleep(0.2)
            continue
        problem = keys.check(fsm, api.transformer)
        if problem is not None:
            on_bad_keys(problem)
        else:
            readiness.bootstrapped = True
        return


async def rbac_defaults_loop(
    api: ObjectAPI, interval: float, readiness: Readiness, is_leader: Callable[[], bool]
) -> None:
    while True:
        await asyncio.sleep(interval)
        if not (readiness.bootstrapped and is_leader()):
            continue
        try:
            await rbac_defaults.reconcile(api)
        except ApiError as exc:
            log.info("reconciling the default roles deferred: %s", exc)


async def lease_loop(leases: LeaseKeeper, api: ObjectAPI) -> None:
    while True:
        await asyncio.sleep(0.5)
        expired = leases.expired()
        if expired:
            try:
                await api.propose(store_ops.LeasesExpired(expired))
            except ApiError:
                pass


async def snapshot_loop(s: MasterSettings, ops: OpsServicer) -> None:
    """A failure (e.g. no quorum for the read barrier) is logged and retried at the next
    interval; it never affects serving."""
    while True:
        await asyncio.sleep(s.snapshot_interval)
        try:
            data = await ops.snapshot_bytes()
            rev = read_meta(data)[0]["revision"]
            # The revision zero-padded: names sort in the order taken, also within a second
            # (retention deletes the first ones in that order).
            path = os.path.join(
                s.snapshot_dir,
                time.strftime(f"hakube-{s.name}-%Y%m%dT%H%M%SZ-r{rev:012d}.snap", time.gmtime()),
            )
            await asyncio.to_thread(write_snapshot, path, data)
            kept = sorted(
                f
                for f in os.listdir(s.snapshot_dir)
                if f.startswith(f"hakube-{s.name}-") and f.endswith(".snap")
            )
            for old in kept[: -s.snapshot_retain]:
                os.unlink(os.path.join(s.snapshot_dir, old))
            log.info("scheduled snapshot %s (%d bytes)", path, len(data))
        except (ApiError, OSError, SnapshotError) as exc:
            log.warning("scheduled snapshot failed: %s", exc)
