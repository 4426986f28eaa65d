"""Kubernetes resource quantities ("500m", "1.5", "128Mi", "2G") as integers.

CPU is counted in millicores and everything else in plain units (bytes for memory), both
rounded up, as Kubernetes does when it compares requests against allocatable.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "": Decimal(1),
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
    """The value of a quantity; ValueError names it when it is malformed."""
    m = _RE.match(text.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f'quantity "{text}" is malformed (e.g. 500m, 2, 128Mi, 1G)')
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    except InvalidOperation as exc:
        raise ValueError(f'quantity "{text}" is malformed') from exc


def milli(text: str) -> int:
    """A CPU quantity in millicores (rounded up); 0 for malformed input."""
    try:
        return math.ceil(parse(text) * 1000)
    except ValueError:
        return 0


def value(text: str) -> int:
    """A quantity in whole units (rounded up); 0 for malformed input."""
    try:
        return math.ceil(parse(text))
    except ValueError:
        return 0
