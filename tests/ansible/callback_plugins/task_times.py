"""An Ansible callback for the tests: how long each task took (all its hosts, as the linear
strategy runs them), appended as JSON lines to the file named by ``TASK_TIMES_FILE``. The
Ansible tests sum these up to show where a deployment's minutes go.

Enabled by tests/ansible/tools.py (``ANSIBLE_CALLBACKS_ENABLED=task_times``); ansible-core has no
timing callback of its own (profile_tasks is in a collection the tests do not install).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase  # type: ignore[import-not-found]


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("TASK_TIMES_FILE", "")
        self._playbook = ""
        self._task = ""
        self._started = 0.0

    def _done(self) -> None:
        if self._task and self._path:
            record = {
                "playbook": self._playbook,
                "task": self._task,
                "seconds": round(time.monotonic() - self._started, 3),
            }
            with open(self._path, "a") as f:
                f.write(json.dumps(record) + "\n")
        self._task = ""

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._playbook = os.path.basename(str(playbook._file_name))

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._done()
        self._task = task.get_name()
        self._started = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._done()
