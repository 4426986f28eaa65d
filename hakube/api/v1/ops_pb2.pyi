from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SaveSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("name", "raft_address", "api_address", "voter", "leader", "connected", "match_index", "lag", "last_contact_seconds", "registered")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    name: str
    raft_address: str
    api_address: str
    voter: bool
    leader: bool
    connected: bool
    match_index: int
    lag: int
    last_contact_seconds: float
    registered: bool
    def __init__(self, name: _Optional[str] = ..., raft_address: _Optional[str] = ..., api_address: _Optional[str] = ..., voter: _Optional[bool] = ..., leader: _Optional[bool] = ..., connected: _Optional[bool] = ..., match_index: _Optional[int] = ..., lag: _Optional[int] = ..., last_contact_seconds: _Optional[float] = ..., registered: _Optional[bool] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("answered_by", "leader", "term", "last_log_index", "members", "removed", "cluster_id")
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    answered_by: str
    leader: str
    term: int
    last_log_index: int
    members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    removed: _containers.RepeatedScalarFieldContainer[str]
    cluster_id: str
    def __init__(self, answered_by: _Optional[str] = ..., leader: _Optional[str] = ..., term: _Optional[int] = ..., last_log_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("name", "raft_address", "api_address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    raft_address: str
    api_address: str
    def __init__(self, name: _Optional[str] = ..., raft_address: _Optional[str] = ..., api_address: _Optional[str] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("name", "timeout_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    timeout_seconds: float
    def __init__(self, name: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class MemberChangeResponse(_message.Message):
    __slots__ = ("message", "members", "seconds")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    message: str
    members: ListMembersResponse
    seconds: float
    def __init__(self, message: _Optional[str] = ..., members: _Optional[_Union[ListMembersResponse, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...
