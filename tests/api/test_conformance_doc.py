"""docs/conformance.md is what the API definitions say today, and its hand-kept notes name
fields that exist."""

from __future__ import annotations

from pathlib import Path

from hakube.api import conformance
from hakube.api.kinds import KINDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_the_document_is_current() -> None:
    assert DOC.read_text() == conformance.render(), (
        "docs/conformance.md is stale: python -m hakube.api.conformance > docs/conformance.md"
    )


def test_every_refused_or_kept_field_exists_and_every_unknown_one_does_not() -> None:
    types = {}
    for kind in KINDS:
        for d in conformance._types(kind.message.DESCRIPTOR):
            types[d.name] = {f.json_name for f in d.fields}
    for key in [*conformance.REFUSED, *conformance.STORED]:
        type_name, _, field = key.partition(".")
        assert field in types[type_name], key
    for type_name, missing in conformance.UNKNOWN.items():
        assert not set(missing) & types[type_name], type_name
