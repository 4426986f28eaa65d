"""Kubernetes resource quantities as the agent needs them: CPU in millicores, memory in bytes.

The API server has already checked the syntax (``hakube.apiserver.validation``); here a value
is only converted. ``100m`` CPU is 100 millicores, ``0.5`` is 500; ``64Mi`` is 64 * 2**20
bytes, ``1G`` 10**9, ``1e3`` 1000.
"""

from __future__ import annotations

import math
import re

_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": 0.001,
    "u": 1e-6,
    "n": 1e-9,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[kMGTPEmun]?)$")


def parse(text: str) -> float:
    """The value of a quantity in base units; ValueError if it is not one."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f'"{text}" is not a quantity (examples: 100m, 0.5, 64Mi, 1G)')
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def cpu_millis(text: str) -> int:
    """CPU in millicores, rounded up (Kubernetes never rounds a request down to zero)."""
    return math.ceil(parse(text) * 1000 - 1e-9) if text else 0


def memory_bytes(text: str) -> int:
    return math.ceil(parse(text)) if text else 0
