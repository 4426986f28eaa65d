"""TokenRequest (``serviceaccounts/token``) as a client call, on the object client's Transport:
the same identity, failover and error mapping as every other call. The node agent asks for the
tokens of its pods' projected volumes this way."""

from __future__ import annotations

from hakube.api.v1 import token_pb2, token_pb2_grpc
from hakube.client.transport import Stubs, Transport


def create_token(
    transport: Transport, namespace: str, name: str, request: token_pb2.TokenRequest
) -> token_pb2.TokenRequest:
    """A signed token of ServiceAccount ``namespace/name`` (answer's ``status.token``); raises
    ``hakube.client.errors`` (NotFound, Forbidden, Invalid...) as every call does."""
    req = token_pb2.CreateTokenRequest(namespace=namespace, name=name, token_request=request)

    def fn(stubs: Stubs, t: float) -> token_pb2.TokenRequest:
        out: token_pb2.TokenRequest = token_pb2_grpc.TokenServiceStub(stubs.channel).CreateToken(
            req, timeout=t
        )
        return out

    return transport.call(fn, what=f"create serviceaccounts/{name}/token")
