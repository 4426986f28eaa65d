"""Finding Ansible's commands for the tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def ansible_tool(name: str) -> str | None:
    """``name`` (ansible-playbook, ansible) installed beside this Python -- where
    ``pip install -e '.[dev]'`` puts it, even when that directory is not on PATH -- else on
    PATH; None if neither has it."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)
