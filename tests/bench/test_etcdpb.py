"""The etcd API subset keeps etcd's wire format: the field numbers a real etcd 3.4 decodes."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from bench.etcdpb import kv_pb2, rpc_pb2


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        (rpc_pb2.PutRequest, {"key": 1, "value": 2, "lease": 3, "prev_kv": 4}),
        (rpc_pb2.PutResponse, {"header": 1, "prev_kv": 2}),
        (rpc_pb2.RangeRequest, {"key": 1, "range_end": 2, "limit": 3, "serializable": 7}),
        (rpc_pb2.RangeResponse, {"header": 1, "kvs": 2, "more": 3, "count": 4}),
        (rpc_pb2.ResponseHeader, {"cluster_id": 1, "member_id": 2, "revision": 3, "raft_term": 4}),
        (rpc_pb2.StatusResponse, {"header": 1, "version": 2, "leader": 4, "raftTerm": 6}),
        (kv_pb2.KeyValue, {"key": 1, "create_revision": 2, "mod_revision": 3, "value": 5}),
    ],
)
def test_field_numbers_match_etcd(message: type[Message], numbers: dict[str, int]) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    assert {name: fields[name].number for name in numbers} == numbers


def test_services_have_etcds_full_names() -> None:
    services = rpc_pb2.DESCRIPTOR.services_by_name
    assert services["KV"].full_name == "etcdserverpb.KV"
    assert (
        services["Maintenance"].methods_by_name["Status"].full_name
        == "etcdserverpb.Maintenance.Status"
    )
