"""Kubernetes resource quantities ("500m", "0.5", "128Mi", "1G", "1e3") as integers.

One parser for every component that compares or converts resources (the node agent, the
scheduler, the HPA controller, ``hakubectl``), so they can never read the same quantity two
ways. The API server has already checked the syntax (``hakube.apiserver.validation``); here a
value is only converted. Arithmetic is exact (``Decimal``), and CPU is counted in millicores,
everything else in plain units (bytes for memory), both rounded up, as Kubernetes does (a
request is never rounded down to zero).

Two flavours: ``cpu_millis``/``memory_bytes`` raise ValueError on malformed input (callers that
report it), ``milli``/``value`` read it as 0 (callers that sum what the API server accepted).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_RE = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse(text: str) -> Decimal:
    """The value of a quantity in base units; ValueError naming it when it is not one."""
    m = _RE.match(text.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f'"{text}" is not a quantity (examples: 100m, 0.5, 64Mi, 1G)')
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    except InvalidOperation as exc:
        raise ValueError(f'"{text}" is not a quantity (examples: 100m, 0.5, 64Mi, 1G)') from exc


def cpu_millis(text: str) -> int:
    """CPU in millicores, rounded up; 0 for ""; ValueError when malformed."""
    return math.ceil(parse(text) * 1000) if text else 0


def memory_bytes(text: str) -> int:
    """A quantity in whole units (bytes for memory), rounded up; 0 for ""; ValueError when
    malformed."""
    return math.ceil(parse(text)) if text else 0


def milli(text: str) -> int:
    """Like ``cpu_millis``, but 0 for malformed input."""
    try:
        return cpu_millis(text)
    except ValueError:
        return 0


def value(text: str) -> int:
    """Like ``memory_bytes``, but 0 for malformed input."""
    try:
        return memory_bytes(text)
    except ValueError:
        return 0
