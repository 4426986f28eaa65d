"""Token cleaner: expired bootstrap-token Secrets are deleted, live ones and others kept."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from hakube.api.v1 import core_pb2
from hakube.client import Client, errors
from hakube.pki import bootstrap
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)
NS = bootstrap.SECRET_NAMESPACE


@pytest.fixture(scope="module")
def cleaner(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComponentProcs]:
    with ComponentProcs(
        "controller-manager", cluster.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as procs:
        procs.start("cm-a", "--controllers", "tokencleaner", "--token-cleaner-period", "0.3")
        yield procs


def token_secret(token: bootstrap.Token, expiration: datetime.datetime | None) -> core_pb2.Secret:
    return core_pb2.Secret(
        metadata={"name": token.secret_name, "namespace": NS},
        type=bootstrap.SECRET_TYPE,
        data=bootstrap.secret_data(token, expiration),
    )


def exists(client: Client, name: str) -> bool:
    try:
        client.secrets.get(name, namespace=NS)
        return True
    except errors.NotFound:
        return False


def test_expired_tokens_are_deleted_and_live_ones_kept(
    client: Client, cleaner: ComponentProcs
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired, live, forever = bootstrap.generate(), bootstrap.generate(), bootstrap.generate()
    client.secrets.create(token_secret(live, now + datetime.timedelta(hours=1)))
    client.secrets.create(token_secret(forever, None))
    # Not a token, though named like one: left alone whatever it holds.
    client.secrets.create(
        core_pb2.Secret(
            metadata={"name": "bootstrap-token-zzzzzz", "namespace": NS},
            data={"expiration": b"2000-01-01T00:00:00Z"},
        )
    )
    client.secrets.create(token_secret(expired, now - datetime.timedelta(minutes=1)))
    wait_for(lambda: not exists(client, expired.secret_name), 30, "the expired token to go")
    assert exists(client, live.secret_name)
    assert exists(client, forever.secret_name)
    assert exists(client, "bootstrap-token-zzzzzz")
