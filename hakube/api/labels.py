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


MAX_SELECTOR_LENGTH = 65536
"""Characters in one label or field selector; longer ones are refused before parsing."""
MAX_REQUIREMENTS = 256
MAX_VALUES = 1024
"""Values in one ``in``/``notin`` set."""
_MAX_KEY, _MAX_VALUE = 317, 63  # prefix (253) "/" name (63); a label value

# Greedy classes with no nested quantifiers: each match is linear in what it consumes, and the
# parser moves a position forward instead of slicing, so parsing is linear in the selector.
_KEY = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_./]*")
_VAL = re.compile(r"[-A-Za-z0-9_.]*")
_SPACE = re.compile(r"\s*")
_OP = re.compile(r"(==|!=|=|in\b|notin\b)")
_ALNUM_END = re.compile(r"[A-Za-z0-9]")


def _quote(text: str, pos: int) -> str:
    near = text[pos : pos + 40]
    return f'near "{near}{"…" if len(text) > pos + 40 else ""}"'


def _check_size(text: str, what: str) -> None:
    if len(text) > MAX_SELECTOR_LENGTH:
        raise SelectorError(
            f"{what} selector is {len(text)} characters long; at most "
            f"{MAX_SELECTOR_LENGTH} are accepted"
        )


def _word(text: str, pos: int, pattern: re.Pattern[str], limit: int, what: str) -> str:
    m = pattern.match(text, pos)
    word = m.group(0) if m else ""
    if word and not _ALNUM_END.match(word[-1]):
        raise SelectorError(
            f'invalid label selector: {what} "{word[:70]}" must end with a letter or digit'
        )
    if len(word) > limit:
        raise SelectorError(f"invalid label selector: {what} longer than {limit} characters")
    return word


def parse_labels(text: str) -> list[Requirement]:
    """Parse a label selector string into requirements (all must hold)."""
    _check_size(text, "label")
    reqs: list[Requirement] = []
    pos, end = 0, len(text)

    def skip(p: int) -> int:
        m = _SPACE.match(text, p)
        return m.end() if m else p

    pos = skip(pos)
    while pos < end:
        if len(reqs) >= MAX_REQUIREMENTS:
            raise SelectorError(f"label selector has more than {MAX_REQUIREMENTS} requirements")
        negate = text.startswith("!", pos)
        if negate:
            pos = skip(pos + 1)
        key = _word(text, pos, _KEY, _MAX_KEY, "key")
        if not key:
            raise SelectorError(f"invalid label selector {_quote(text, pos)}")
        pos = skip(pos + len(key))
        op = _OP.match(text, pos) if not negate else None
        if op is None:
            reqs.append(Requirement(key, "!" if negate else "exists"))
        elif op.group(1) in ("in", "notin"):
            pos = skip(op.end())
            if not text.startswith("(", pos):
                raise SelectorError(f"invalid label selector: expected ( {_quote(text, pos)}")
            close = text.find(")", pos)
            if close < 0:
                raise SelectorError(f"invalid label selector: unclosed ( {_quote(text, pos)}")
            values = tuple(v.strip() for v in text[pos + 1 : close].split(",") if v.strip())
            if len(values) > MAX_VALUES:
                raise SelectorError(f"label selector: more than {MAX_VALUES} values for {key}")
            for v in values:
                if _word(v, 0, _VAL, _MAX_VALUE, "value") != v:
                    raise SelectorError(f'invalid label selector: value "{v[:70]}"')
            reqs.append(Requirement(key, op.group(1), values))
            pos = skip(close + 1)
        else:
            pos = skip(op.end())
            value = _word(text, pos, _VAL, _MAX_VALUE, "value")
            reqs.append(Requirement(key, "!=" if op.group(1) == "!=" else "=", (value,)))
            pos = skip(pos + len(value))
        if pos < end:
            if text[pos] != ",":
                raise SelectorError(f"invalid label selector {_quote(text, pos)}")
            pos = skip(pos + 1)
            if pos >= end:
                raise SelectorError("invalid label selector: trailing comma")
    return reqs


_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9_.]*)\s*(==|!=|=)(.*)", re.DOTALL)


def parse_fields(text: str) -> list[Requirement]:
    """Parse a field selector (``=``, ``==``, ``!=`` only, as in Kubernetes)."""
    _check_size(text, "field")
    reqs: list[Requirement] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if len(reqs) >= MAX_REQUIREMENTS:
            raise SelectorError(f"field selector has more than {MAX_REQUIREMENTS} requirements")
        m = _FIELD.fullmatch(part)
        if not m:
            raise SelectorError(f'invalid field selector "{part[:70]}"')
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
