"""Make the checkout's ``bench`` package importable under a bare ``pytest`` too.

``bench/`` is not part of the installed wheel (it only holds benchmarks), so it is importable
only from the repository root: ``python -m pytest`` puts the current directory on sys.path, a
bare ``pytest`` does not. Drop this file if pyproject's pytest settings gain
``pythonpath = ["."]``.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
