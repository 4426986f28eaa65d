"""Selectors are parsed in time linear in their length, with caps, and refused with short
messages: one request with a huge or hostile selector must not hold up a master's event loop
(a 0.8 MB selector once blocked every API call of a master for 10 s)."""

from __future__ import annotations

import pytest

from hakube.api.labels import (
    MAX_REQUIREMENTS,
    MAX_SELECTOR_LENGTH,
    MAX_VALUES,
    SelectorError,
    parse_fields,
    parse_labels,
)

# Each case near the length cap is parsed many times below; quadratic parsing (or regex
# backtracking) of any of them would take minutes, which the test's timeout turns into a failure.
CAP = MAX_SELECTOR_LENGTH
HOSTILE = [
    "a" * (CAP - 1) + "-",  # a key that only fails at its last character
    "a=" + "b" * (CAP - 3) + "-",  # likewise a value
    "k in (" + "v," * (CAP // 2 - 4) + ")",  # a huge set
    ",".join(["a"] * (CAP // 2)),  # many tiny requirements
    "a in (" * (CAP // 6),  # nested-looking garbage
    " " * (CAP - 1) + "!",
    "x" * (CAP + 1),  # over the cap
]


@pytest.mark.timeout(20)
def test_hostile_selectors_are_refused_quickly_with_short_messages() -> None:
    for _ in range(20):
        for text in HOSTILE:
            with pytest.raises(SelectorError) as err:
                parse_labels(text)
            assert len(str(err.value)) < 200, str(err.value)[:300]


@pytest.mark.timeout(20)
def test_field_selectors_have_the_same_caps() -> None:
    with pytest.raises(SelectorError, match="at most 65536"):
        parse_fields("a=" + "b" * CAP)
    with pytest.raises(SelectorError, match=f"more than {MAX_REQUIREMENTS}"):
        parse_fields(",".join(f"f{i}=x" for i in range(MAX_REQUIREMENTS + 1)))


def test_the_caps_name_what_was_exceeded() -> None:
    with pytest.raises(SelectorError, match=f"more than {MAX_REQUIREMENTS} requirements"):
        parse_labels(",".join(f"k{i}" for i in range(MAX_REQUIREMENTS + 1)))
    with pytest.raises(SelectorError, match=f"more than {MAX_VALUES} values"):
        parse_labels("k in (" + ",".join(f"v{i}" for i in range(MAX_VALUES + 1)) + ")")
    with pytest.raises(SelectorError, match="longer than 63"):
        parse_labels("k=" + "v" * 64)
    assert len(parse_labels(",".join(f"k{i}" for i in range(MAX_REQUIREMENTS)))) == MAX_REQUIREMENTS


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("a in(b,c)", [("a", "in", ("b", "c"))]),
        ("!a , b!=c", [("a", "!", ()), ("b", "!=", ("c",))]),
        ("app.kubernetes.io/name=web", [("app.kubernetes.io/name", "=", ("web",))]),
        ("a=", [("a", "=", ("",))]),
        ("inx", [("inx", "exists", ())]),
    ],
)
def test_valid_selectors_still_parse(
    text: str, parsed: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    assert [(r.key, r.op, r.values) for r in parse_labels(text)] == parsed
