"""seccompProfile / appArmorProfile validation: each bad shape named by its field path."""

from __future__ import annotations

from typing import Any

import pytest

from hakube.api import profiles
from hakube.api.convert import from_dict


def spec(pod_sc: dict[str, Any], container_sc: dict[str, Any]) -> Any:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": pod_sc,
            "containers": [{"name": "c", "image": "i", "securityContext": container_sc}],
        },
    }
    return from_dict(doc).spec


@pytest.mark.parametrize(
    ("pod_sc", "container_sc", "expected"),
    [
        ({"seccompProfile": {"type": "RuntimeDefault"}}, {}, []),
        ({}, {"seccompProfile": {"type": "Localhost", "localhostProfile": "a/b.json"}}, []),
        ({}, {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}}, []),
        (
            {"seccompProfile": {"type": "Strict"}},
            {},
            [("spec.securityContext.seccompProfile.type", "unsupported value")],
        ),
        (
            {},
            {"seccompProfile": {"type": "Localhost"}},
            [("spec.containers[0].securityContext.seccompProfile.localhostProfile", "required")],
        ),
        (
            {},
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "../../etc/x.json"}},
            [("spec.containers[0].securityContext.seccompProfile.localhostProfile", "relative")],
        ),
        (
            {},
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "/etc/x.json"}},
            [("spec.containers[0].securityContext.seccompProfile.localhostProfile", "relative")],
        ),
        (
            {"appArmorProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}},
            {},
            [("spec.securityContext.appArmorProfile.localhostProfile", "only")],
        ),
    ],
)
def test_profile_problems_name_the_field(
    pod_sc: dict[str, Any], container_sc: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    got = list(profiles.problems(spec(pod_sc, container_sc)))
    assert [p for p, _ in got] == [p for p, _ in expected]
    for (_, msg), (_, word) in zip(got, expected, strict=True):
        assert word in msg


def test_the_container_choice_wins_over_the_pod_choice() -> None:
    s = spec(
        {"seccompProfile": {"type": "RuntimeDefault"}}, {"seccompProfile": {"type": "Unconfined"}}
    )
    chosen = profiles.seccomp_of(s, s.containers[0])
    assert chosen is not None and chosen.type == "Unconfined"
    s = spec({"seccompProfile": {"type": "RuntimeDefault"}}, {})
    chosen = profiles.seccomp_of(s, s.containers[0])
    assert chosen is not None and chosen.type == "RuntimeDefault"
    assert profiles.apparmor_of(s, s.containers[0]) is None
