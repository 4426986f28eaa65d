"""The client's public namespace: what programs import from ``hakube.client`` is listed in
``__all__``, each name is importable, and every kind has its typed property."""

from __future__ import annotations

import hakube.client as hc
from hakube.api import kinds
from hakube.client.resources import Resource, TypedResources


def test_every_listed_name_is_importable_and_listed_once() -> None:
    assert len(set(hc.__all__)) == len(hc.__all__)
    missing = [name for name in hc.__all__ if not hasattr(hc, name)]
    assert missing == []


def test_the_public_classes_are_listed() -> None:
    public = {
        name
        for name, value in vars(hc).items()
        if isinstance(value, type) and not name.startswith("_")
    }
    assert public <= set(hc.__all__), sorted(public - set(hc.__all__))


def test_every_kind_has_a_typed_property_named_by_its_plural() -> None:
    names = {n for n in dir(TypedResources) if not n.startswith("_")}
    assert [k.plural for k in kinds.KINDS if k.plural not in names] == []
    for k in kinds.KINDS:
        assert isinstance(getattr(TypedResources, k.plural), property), k.plural
    assert Resource.__name__ in hc.__all__
