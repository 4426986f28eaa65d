from hakube.api.agent.v1 import agent_pb2 as _agent_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeStatsRequest(_message.Message):
    __slots__ = ("node", "request")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    node: str
    request: _agent_pb2.StatsRequest
    def __init__(self, node: _Optional[str] = ..., request: _Optional[_Union[_agent_pb2.StatsRequest, _Mapping]] = ...) -> None: ...
