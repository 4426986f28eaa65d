"""Warnings attached to accepted writes: found by validation's one pass, collected per request,
and encoded as RFC 7234 ``Warning`` header values."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hakube.api import convert, kinds
from hakube.api.podresources import RESIZE_WARNING
from hakube.apiserver import apiwarnings
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import default_and_validate

RESIZE = [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]


def _deployment(container: dict[str, Any], init: list[dict[str, Any]] | None = None) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "a", "image": "i"}, container]}
    if init:
        spec["initContainers"] = init
    return convert.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
            },
        }
    )


def _warnings(msg: Any, **kw: Any) -> list[str]:
    with apiwarnings.collect() as found:
        default_and_validate(kinds.BY_MESSAGE[type(msg)], msg, **kw)
        default_and_validate(kinds.BY_MESSAGE[type(msg)], msg, **kw)  # a retry warns once
    return found


def test_resize_policy_is_accepted_with_a_warning_naming_the_container() -> None:
    found = _warnings(_deployment({"name": "b", "image": "i", "resizePolicy": RESIZE}))
    assert found == [f"spec.template.spec.containers[1].resizePolicy: {RESIZE_WARNING}"]


def test_no_resize_policy_no_warning_and_none_on_a_status_update() -> None:
    assert _warnings(_deployment({"name": "b", "image": "i"})) == []
    with_policy = _deployment({"name": "b", "image": "i", "resizePolicy": RESIZE})
    assert _warnings(with_policy, status_update=True) == []


def test_a_refused_write_gets_its_error_and_the_warnings_found_before_it() -> None:
    """As Kubernetes: the warnings travel with the refusal, the door sends both."""
    init = [{"name": "x", "image": "i", "resizePolicy": RESIZE}]
    msg = _deployment({"name": "b", "image": "i", "resizePolicy": RESIZE}, init)
    with apiwarnings.collect() as found, pytest.raises(Invalid, match=re.escape("initContainers")):
        default_and_validate(kinds.BY_MESSAGE[type(msg)], msg)
    assert found == [f"spec.template.spec.containers[1].resizePolicy: {RESIZE_WARNING}"]


def test_the_same_text_is_kept_once_per_request() -> None:
    with apiwarnings.collect() as found:
        apiwarnings.add(["a", "b", "a"])
        apiwarnings.add(["b"])
    assert found == ["a", "b"]


def test_a_long_warning_is_cut_and_the_total_is_capped() -> None:
    long = "x" * 10_000
    with apiwarnings.collect() as found:
        apiwarnings.add([long, long + "y"])  # the same text once cut: kept once
        apiwarnings.add([f"{i:03d}" + "z" * 300 for i in range(100)])
        apiwarnings.add(["short"])  # no room left
    assert found[0] == "x" * (apiwarnings.MAX_TEXT - 3) + "..."
    assert all(len(w) == apiwarnings.MAX_TEXT for w in found)
    assert len(found) == apiwarnings.MAX_TOTAL // apiwarnings.MAX_TEXT


def test_a_short_warning_still_fits_where_a_long_one_does_not() -> None:
    size = apiwarnings.MAX_TEXT
    full = [f"{i:03d}".ljust(size, "a") for i in range(apiwarnings.MAX_TOTAL // size - 1)]
    with apiwarnings.collect() as found:
        apiwarnings.add([*full, "c" * (size - 6), "b" * 20, "short"])
    assert found == [*full, "c" * (size - 6), "short"]
    assert sum(map(len, found)) == apiwarnings.MAX_TOTAL - 1


def test_the_count_is_capped() -> None:
    with apiwarnings.collect() as found:
        apiwarnings.add(str(i) for i in range(1000))
    assert found == [str(i) for i in range(apiwarnings.MAX_WARNINGS)]


def test_a_kept_warning_is_printable_ascii() -> None:
    """What gRPC metadata and an HTTP header both carry as they are: no control character
    (not even a tab), nothing beyond ASCII."""
    with apiwarnings.collect() as found:
        apiwarnings.add(["tab\there", "two\r\nlines", "café"])
    assert found == ["tab here", "two??lines", "caf?"]


def test_outside_a_request_warnings_go_nowhere() -> None:
    apiwarnings.add(["nobody listens"])  # no error, nothing kept
    with apiwarnings.collect() as found:
        pass
    assert found == []


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ("plain text", '299 - "plain text"'),
        ('say "hi"', '299 - "say \\"hi\\""'),
        ("back\\slash", '299 - "back\\\\slash"'),
        ("two\r\nlines", '299 - "two??lines"'),  # no header splitting
        ("café\x00", '299 - "caf??"'),
        ("tab\there", '299 - "tab\there"'),
    ],
)
def test_header_value_is_a_quoted_string(text: str, header: str) -> None:
    assert apiwarnings.header_value(text) == header
    value = header.encode("latin-1").decode("ascii")
    assert "\r" not in value and "\n" not in value
