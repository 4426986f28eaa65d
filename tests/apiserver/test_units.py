"""Selectors, manifest conversion, validation and the byte-level response encoding."""

from __future__ import annotations

import pytest

from hakube.api import convert, kinds
from hakube.api.labels import SelectorError, matcher, parse_fields, parse_labels
from hakube.api.v1 import api_pb2, core_pb2
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import default_and_validate
from hakube.apiserver.wire import list_response_bytes, object_bytes, watch_event_bytes


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("env in (prod, dev)", {"env": "dev"}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("env notin (prod)", {}, True),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": "x"}, False),
        ("a=b,!c,d in (e)", {"a": "b", "d": "e"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selectors_match_like_kubernetes(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    m = matcher(parse_labels(selector))
    assert (m is None or m(labels)) is expected


@pytest.mark.parametrize("bad", ["a in (b", "a=b,", "=b", "a b", "a in b"])
def test_malformed_label_selectors_are_refused(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_labels(bad)


def test_field_selectors_support_equality_only() -> None:
    reqs = parse_fields("spec.nodeName=n1,status.phase!=Running")
    assert [(r.key, r.op, r.values) for r in reqs] == [
        ("spec.nodeName", "=", ("n1",)),
        ("status.phase", "!=", ("Running",)),
    ]
    with pytest.raises(SelectorError):
        parse_fields("spec.nodeName in (a)")


def test_a_kubernetes_manifest_converts_unchanged_and_back() -> None:
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "hostIP": "0.0.0.0"}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }
    assert convert.to_dict(convert.from_dict(doc)) == doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "imagee": "x"}]},
            },
            'Pod p: unknown field "spec.containers[0].imagee"',
        ),
        ({"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g"}}, 'unknown kind "Gizmo"'),
        ({"apiVersion": "apps/v2", "kind": "Deployment"}, 'apiVersion "apps/v2" is not served'),
        (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"ports": [{"port": "eighty"}]},
            },
            'invalid value for field "spec.ports.port"',
        ),
    ],
)
def test_bad_manifests_name_the_object_and_the_field(doc: dict[str, object], message: str) -> None:
    with pytest.raises(convert.ManifestError) as err:
        convert.from_dict(doc)
    assert message in str(err.value)


def validate(doc: dict[str, object]) -> object:
    msg = convert.from_dict(doc)
    msg.metadata.namespace = "default"  # type: ignore[attr-defined]
    default_and_validate(kinds.BY_MESSAGE[type(msg)], msg)
    return msg


def test_templates_must_match_their_selector() -> None:
    with pytest.raises(Invalid) as err:
        validate(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "rs"},
                "spec": {
                    "selector": {"matchLabels": {"app": "a"}},
                    "template": {
                        "metadata": {"labels": {"app": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "i"}]},
                    },
                },
            }
        )
    assert 'ReplicaSet "rs" is invalid: spec.template.metadata.labels' in str(err.value)


def test_jobs_need_a_non_always_restart_policy_and_get_defaults() -> None:
    with pytest.raises(Invalid) as err:
        validate(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            }
        )
    assert "spec.template.spec.restartPolicy" in str(err.value)
    job = validate(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                }
            },
        }
    )
    assert (job.spec.backoff_limit, job.spec.completions, job.spec.parallelism) == (6, 1, 1)  # type: ignore[attr-defined]


def test_cronjob_schedules_and_time_zones_are_checked() -> None:
    base = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "c", "image": "i"}],
                        }
                    }
                }
            },
        },
    }
    cj = validate(base)
    assert cj.spec.concurrency_policy == "Allow"  # type: ignore[attr-defined]
    base["spec"]["schedule"] = "61 * * * *"  # type: ignore[index]
    with pytest.raises(Invalid, match="spec.schedule"):
        validate(base)


def test_secrets_merge_string_data_and_services_default_target_port() -> None:
    s = validate(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"user": "admin"},
        }
    )
    assert s.data["user"] == b"admin" and not s.string_data  # type: ignore[attr-defined]
    svc = validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]},
        }
    )
    assert convert.to_dict(svc)["spec"]["ports"][0]["targetPort"] == 80  # type: ignore[arg-type]


def test_wire_encoding_matches_protobuf() -> None:
    kind = kinds.BY_NAME["ConfigMap"]
    cm = core_pb2.ConfigMap(metadata={"name": "x", "namespace": "d"}, data={"k": "v"})
    raw = object_bytes(kind, cm.SerializeToString(), 42)
    obj = api_pb2.Object.FromString(raw)
    assert obj.config_map.metadata.resource_version == "42"
    assert obj.config_map.data["k"] == "v"
    ev = api_pb2.WatchEvent.FromString(watch_event_bytes("ADDED", raw, 42))
    assert (ev.type, ev.resource_version, ev.object.config_map.metadata.name) == (
        "ADDED",
        "42",
        "x",
    )
    lr = api_pb2.ListResponse.FromString(list_response_bytes([raw, raw], 43, "tok", 7))
    assert len(lr.items) == 2 and lr.resource_version == "43"
    assert getattr(lr, "continue") == "tok" and lr.remaining_item_count == 7
