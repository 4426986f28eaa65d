"""Label and field selectors with Kubernetes syntax.

Label: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a`` (exists), ``!a``,
comma-separated and ANDed. Field: ``path=value``, ``path==value``, ``path!=value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hakube.api.v1 import meta_pb2

Matcher = Callable[[dict[str, str]], bool]


class SelectorError(ValueError):
    """A selector that does not parse; the message quotes the offending part."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op == "=":
            return has and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not has or labels[self.key] != self.values[0]
        if self.op == "in":
            return has and labels[self.key] in self.values
        return not has or labels[self.key] not in self.values  # notin


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VAL = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VAL})\s*")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*")


def parse_labels(text: str) -> list[Requirement]:
    """Parse a label selector string into requirements (all must hold)."""
    reqs: list[Requirement] = []
    rest = text.strip()
    while rest:
        m = _SET.match(rest)
        if m:
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
            rest = rest[m.end():]
        else:
            m = _EQ.match(rest)
            if m:
                op = "=" if m.group(2) in ("=", "==") else "!="
                reqs.append(Requirement(m.group(1), op, (m.group(3),)))
                rest = rest[m.end():]
            else:
                m = _EXISTS.match(rest)
                if not m or m.end() == 0:
                    raise SelectorError(f'invalid label selector "{text}" near "{rest}"')
                reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
                rest = rest[m.end():]
        if rest.startswith(","):
            rest = rest[1:].lstrip()
            if not rest:
                raise SelectorError(f'invalid label selector "{text}": trailing comma')
        elif rest:
            raise SelectorError(f'invalid label selector "{text}" near "{rest}"')
    return reqs


def parse_fields(text: str) -> list[Requirement]:
    """Parse a field selector (``=``, ``==``, ``!=`` only, as in Kubernetes)."""
    reqs: list[Requirement] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"^([A-Za-z][A-Za-z0-9_.]*)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise SelectorError(f'invalid field selector "{part}"')
        op = "!=" if m.group(2) == "!=" else "="
        reqs.append(Requirement(m.group(1), op, (m.group(3).strip(),)))
    return reqs


class Match:
    """A compiled selector: call it with labels (or fields). ``equal`` is one ``key=value``
    pair every match must carry (None when the selector has no equality), which lets watch
    fan-out index watchers instead of testing each one against each event."""

    __slots__ = ("reqs", "equal", "_key", "_value")

    def __init__(self, reqs: list[Requirement]) -> None:
        self.reqs = tuple(reqs)
        eq = next((r for r in reqs if r.op == "="), None)
        self.equal = (eq.key, eq.values[0]) if eq is not None else None
        # The common case, a single key=value, skips the generic loop.
        single = len(reqs) == 1 and eq is not None
        self._key, self._value = (eq.key, eq.values[0]) if single and eq else ("", "")

    def __call__(self, labels: dict[str, str]) -> bool:
        if self._key:
            return labels.get(self._key) == self._value
        return all(r.matches(labels) for r in self.reqs)


def matcher(reqs: list[Requirement]) -> Match | None:
    """A predicate for the requirements, or None when there are none (everything matches)."""
    if not reqs:
        return None
    return Match(reqs)


def from_label_selector(sel: meta_pb2.LabelSelector) -> list[Requirement]:
    """Requirements of a LabelSelector message (matchLabels + matchExpressions)."""
    reqs = [Requirement(k, "=", (v,)) for k, v in sorted(sel.match_labels.items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.match_expressions:
        if e.operator not in ops:
            raise SelectorError(f'unknown label selector operator "{e.operator}"')
        reqs.append(Requirement(e.key, ops[e.operator], tuple(e.values)))
    return reqs


def to_string(reqs: list[Requirement]) -> str:
    """Render requirements back into selector syntax (for List/Watch requests)."""
    parts = []
    for r in reqs:
        if r.op in ("=", "!="):
            parts.append(f"{r.key}{r.op}{r.values[0]}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        elif r.op == "exists":
            parts.append(r.key)
        else:
            parts.append(f"!{r.key}")
    return ",".join(parts)


def selector_matches(sel: meta_pb2.LabelSelector, labels: Mapping[str, str]) -> bool:
    """A LabelSelector message against a label map; a malformed selector matches nothing.
    An empty selector matches everything, as in Kubernetes' LabelSelectorAsSelector."""
    try:
        reqs = from_label_selector(sel)
    except SelectorError:
        return False
    return all(r.matches(labels) for r in reqs)
