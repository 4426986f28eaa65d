"""TTL leases through the LeaseService on a real 3-master cluster.

Objects created with a lease live while its holder renews it (through any master), vanish with
DELETED watch events when renewals stop or the lease is revoked, and survive a leader kill as
long as renewals continue through the survivors.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest

from hakube.api import kinds
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.testing.api import RETRYABLE, Api
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def lease_call(
    api: Api, method: str, req: Any, via: int | None = None, deadline: float = 20.0
) -> Any:
    """Call LeaseService on master ``via``, or on any master, moving on while UNAVAILABLE."""
    end = time.monotonic() + deadline
    i = via if via is not None else 0
    while True:
        stub = api_pb2_grpc.LeaseServiceStub(api.channels[i % len(api.channels)])
        try:
            return getattr(stub, method)(req, timeout=3)
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > end:
                raise
            i += 1
            time.sleep(0.05)


def create_with_lease(api: Api, name: str, lease: int) -> Any:
    cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": "default"}, data={"k": "v"})
    return api.call(
        "Create",
        api_pb2.CreateRequest(object=kinds.wrap(cm), lease=lease, request_id=str(uuid.uuid4())),
    )


def exists(api: Api, name: str) -> bool:
    try:
        api.call("Get", api_pb2.GetRequest(kind="ConfigMap", namespace="default", name=name))
        return True
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False


def code_of(fn: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code()


def test_renewed_lease_keeps_objects_and_expiry_deletes_them(api: Api) -> None:
    granted = lease_call(api, "Grant", api_pb2.LeaseGrantRequest(ttl_seconds=2), via=1)
    assert granted.id > 0 and granted.ttl_seconds == 2
    create_with_lease(api, "leased-a", granted.id)
    rv = api.call("List", api_pb2.ListRequest(kind="ConfigMap")).resource_version
    watch = api.stubs[2].Watch(
        api_pb2.WatchRequest(kind="ConfigMap", namespace="default", resource_version=rv), timeout=60
    )
    # Renew through different masters for well past the TTL: the object stays.
    renew_until = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < renew_until:
        resp = lease_call(api, "KeepAlive", api_pb2.LeaseKeepAliveRequest(id=granted.id), via=i)
        assert resp.ttl_seconds == 2
        i += 1
        time.sleep(0.4)
    assert exists(api, "leased-a")
    # Renewals stop: the leader expires the lease and the object goes, as a watch event.
    stopped = time.monotonic()
    wait_for(lambda: not exists(api, "leased-a"), 15, "the leased object to expire")
    assert time.monotonic() - stopped >= 1.0, "expired before its TTL"
    for ev in watch:
        if ev.type == "DELETED" and ev.object.config_map.metadata.name == "leased-a":
            break
    watch.cancel()
    assert (
        code_of(lambda: lease_call(api, "KeepAlive", api_pb2.LeaseKeepAliveRequest(id=granted.id)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert code_of(lambda: create_with_lease(api, "late", granted.id)) == grpc.StatusCode.NOT_FOUND
    assert not exists(api, "late")


def test_revoke_deletes_every_attached_object(api: Api) -> None:
    granted = lease_call(api, "Grant", api_pb2.LeaseGrantRequest(ttl_seconds=60))
    for name in ("rv-1", "rv-2"):
        create_with_lease(api, name, granted.id)
    api.create_configmap("rv-free")
    resp = lease_call(api, "Revoke", api_pb2.LeaseRevokeRequest(id=granted.id), via=2)
    assert resp.deleted == 2
    assert not exists(api, "rv-1") and not exists(api, "rv-2") and exists(api, "rv-free")
    assert (
        code_of(lambda: lease_call(api, "Revoke", api_pb2.LeaseRevokeRequest(id=granted.id)))
        == grpc.StatusCode.NOT_FOUND
    )


def test_bad_grants_and_retried_grants(api: Api) -> None:
    for bad in (
        api_pb2.LeaseGrantRequest(ttl_seconds=0),
        api_pb2.LeaseGrantRequest(ttl_seconds=-5),
        api_pb2.LeaseGrantRequest(ttl_seconds=5, id=-1),
    ):
        assert (
            code_of(lambda b=bad: lease_call(api, "Grant", b)) == grpc.StatusCode.INVALID_ARGUMENT
        )
    first = lease_call(api, "Grant", api_pb2.LeaseGrantRequest(ttl_seconds=30, id=4242))
    assert first.id == 4242
    assert (
        code_of(
            lambda: lease_call(api, "Grant", api_pb2.LeaseGrantRequest(ttl_seconds=30, id=4242))
        )
        == grpc.StatusCode.ALREADY_EXISTS
    )
    # A retried grant (same request id, any master) answers with the same lease.
    req = api_pb2.LeaseGrantRequest(ttl_seconds=30, request_id="grant-once")
    a = lease_call(api, "Grant", req, via=0)
    b = lease_call(api, "Grant", req, via=2)
    assert a.id == b.id and a.ttl_seconds == b.ttl_seconds == 30
    assert code_of(lambda: create_with_lease(api, "neg", -3)) == grpc.StatusCode.INVALID_ARGUMENT
    assert not exists(api, "neg")


def test_lease_survives_leader_kill_while_renewed(cluster: LocalCluster, api: Api) -> None:
    granted = lease_call(api, "Grant", api_pb2.LeaseGrantRequest(ttl_seconds=3))
    create_with_lease(api, "survivor", granted.id)
    leader = cluster.leader()
    survivors = [i for i, m in enumerate(cluster.masters) if m is not leader]
    cluster.kill(leader)
    # Keep renewing through the survivors across the failover, for longer than the TTL.
    until = time.monotonic() + 6.0
    while time.monotonic() < until:
        lease_call(
            api,
            "KeepAlive",
            api_pb2.LeaseKeepAliveRequest(id=granted.id),
            via=survivors[0],
            deadline=10,
        )
        time.sleep(0.5)
    assert exists(api, "survivor")
    lease_call(api, "Revoke", api_pb2.LeaseRevokeRequest(id=granted.id), via=survivors[1])
    assert not exists(api, "survivor")
    cluster.start(leader)
    cluster.wait_ready(timeout=60)
