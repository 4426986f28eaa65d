"""``hakube master``: one member of the control plane, split by job (see ``service.py``).

``Master`` follows the ``hakube.lifecycle.Service`` shape: ``run()`` blocks, ``stop()`` is
idempotent from any thread, ``ready`` is set once it first reports ready.
"""

from hakube.master.service import Master, tune_process
from hakube.master.settings import BOOTSTRAP_NAMESPACES, MasterSettings

__all__ = ["BOOTSTRAP_NAMESPACES", "Master", "MasterSettings", "tune_process"]
