"""The client's pure parts, without a cluster: public names, error mapping, endpoint parsing,
the apply merge, and the config file."""

from __future__ import annotations

import os
import pkgutil

import grpc
import pytest

import hakube.client as hc
from hakube.api import kinds
from hakube.client import apiwarnings, errors
from hakube.client.apply import LAST_APPLIED, strip_manifest, three_way
from hakube.client.config import ConfigError, load_client_config, read_config_file
from hakube.client.resources import TypedResources
from hakube.client.transport import RetryPolicy, parse_endpoints

pytestmark = pytest.mark.timeout(10)


def test_the_public_namespace_is_exactly_what_all_lists() -> None:
    # submodules become attributes of the package once anything imports them
    submodules = {m.name for m in pkgutil.iter_modules(hc.__path__)}
    public = {n for n in dir(hc) if not n.startswith("_")} - submodules - {"annotations"}
    assert public == set(hc.__all__)


def test_every_kind_has_a_typed_helper_named_by_its_plural() -> None:
    for kind in kinds.KINDS:
        prop = getattr(TypedResources, kind.plural, None)
        assert isinstance(prop, property), f"no client.{kind.plural}"
        assert kind.message.__name__ in str(prop.fget.__annotations__["return"])


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    "code,cls",
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.ABORTED, errors.Conflict),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.Invalid),
        (grpc.StatusCode.OUT_OF_RANGE, errors.Gone),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.TooLarge),
        (grpc.StatusCode.PERMISSION_DENIED, errors.Forbidden),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.INTERNAL, errors.ServerError),
    ],
)
def test_each_status_code_becomes_its_hakube_error(
    code: grpc.StatusCode, cls: type[errors.HakubeError]
) -> None:
    err = errors.from_rpc_error(FakeRpcError(code, 'pods "web": something'))
    assert type(err) is cls and err.code == code and err.message == 'pods "web": something'
    assert isinstance(err, errors.HakubeError)


def test_invalid_carries_the_field_paths_of_the_server_message() -> None:
    err = errors.from_rpc_error(
        FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            'Pod "web" is invalid: spec.containers[0].image: required value; metadata.labels[a/b]: '
            "invalid label key (and 2 more)",
        )
    )
    assert isinstance(err, errors.Invalid)
    assert err.field == "spec.containers[0].image"
    assert err.causes == [
        ("spec.containers[0].image", "required value"),
        ("metadata.labels[a/b]", "invalid label key"),
    ]


def test_endpoints_parse_from_a_list_or_a_comma_separated_string() -> None:
    assert parse_endpoints("a:1, b:2,,a:1") == ["a:1", "b:2"]
    assert parse_endpoints(["grpc://h:7"]) == ["h:7"]
    for bad in ("nohost", "h:0", "h:x", ""):
        with pytest.raises(ValueError):
            parse_endpoints(bad)


def test_retry_pauses_are_jittered_and_capped() -> None:
    p = RetryPolicy(backoff_base=0.1, backoff_cap=0.4)
    pauses = [p.pause(n) for n in range(20) for _ in range(20)]
    assert all(0 <= x <= 0.4 for x in pauses)
    assert len(set(pauses)) > 100
    with pytest.raises(ValueError, match="timeout"):
        RetryPolicy(timeout=0).validate()


def test_three_way_merge_keeps_others_fields_and_drops_what_the_manifest_dropped() -> None:
    live = {
        "metadata": {"labels": {"a": "1", "b": "2", "byhand": "x"}},
        "spec": {"nodeName": "n1", "replicas": 5, "image": "old"},
    }
    last = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2, "image": "old"}}
    desired = {"metadata": {"labels": {"a": "1"}}, "spec": {"image": "new"}}
    assert three_way(live, last, desired) == {
        "metadata": {"labels": {"a": "1", "byhand": "x"}},
        "spec": {"nodeName": "n1", "image": "new"},
    }


def test_manifests_lose_status_and_server_metadata_but_keep_the_version_as_precondition() -> None:
    doc = {
        "kind": "Pod",
        "metadata": {
            "name": "x",
            "uid": "u",
            "resourceVersion": "7",
            "annotations": {LAST_APPLIED: "{}"},
        },
        "status": {"phase": "Running"},
    }
    stripped, rv = strip_manifest(doc)
    assert stripped == {"kind": "Pod", "metadata": {"name": "x"}} and rv == "7"
    assert "status" in doc  # the input is not modified


def test_config_file_round_trip_and_errors(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = str(tmp_path)
    monkeypatch.delenv("HAKUBE_CONFIG", raising=False)
    monkeypatch.delenv("HAKUBE_SERVER", raising=False)
    monkeypatch.setenv("HOME", d)
    with pytest.raises(ConfigError, match="no masters configured.*--server"):
        load_client_config()
    cfg = hc.ClientConfig(servers=["127.0.0.1:1", "127.0.0.1:2"], namespace="dev")
    from hakube.client.config import write_client_config

    write_client_config("~/.hakube/config", cfg, comment="test")
    loaded = load_client_config()
    assert loaded.servers == cfg.servers and loaded.namespace == "dev"
    assert load_client_config(server="h:9").servers == ["h:9"]
    assert load_client_config(server="h:9").namespace == "dev"
    monkeypatch.setenv("HAKUBE_SERVER", "e:1,e:2")
    assert load_client_config(namespace="x").servers == ["e:1", "e:2"]
    bad = os.path.join(d, "bad")
    for text, message in (
        ("servers: [nohost]", "not HOST:PORT"),
        ("server: [a:1]", 'unknown setting "server"'),
        ("servers: [a:1]\ntimeout: -1", "timeout"),
        ("[1, 2", "not valid YAML"),
    ):
        with open(bad, "w") as f:
            f.write(text)
        with pytest.raises(ConfigError, match=message):
            read_config_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_client_config(os.path.join(d, "missing"))


def test_unknown_kinds_are_refused_before_any_request() -> None:
    c = hc.Client("127.0.0.1:1")
    with pytest.raises(errors.Invalid, match='unknown kind "gizmos"'):
        c.get("gizmos", "x")
    c.close()


def test_warnings_reach_the_handler_once_per_call_in_order() -> None:
    got: list[str] = []
    metadata = [("warning", "a"), ("retry-after-ms", "5"), ("warning", b"b"), ("warning", "a")]
    texts = apiwarnings.of_metadata(metadata)
    assert texts == ["a", "b", "a"]
    seen: set[str] = set()
    apiwarnings.deliver(got.append, texts, seen)
    apiwarnings.deliver(got.append, ["b", "c"], seen)  # the same call's next attempt
    assert got == ["a", "b", "c"]
    apiwarnings.deliver(got.append, ["a"])  # another call
    assert got == ["a", "b", "c", "a"]
    assert apiwarnings.of_metadata(None) == []


def test_the_default_handler_logs_each_text_once(caplog: pytest.LogCaptureFixture) -> None:
    handler = apiwarnings.LogOnce()
    with caplog.at_level("WARNING", logger="hakube.client"):
        for text in ["a", "b", "a"]:
            handler(text)
    assert [r.getMessage() for r in caplog.records] == ["API warning: a", "API warning: b"]
