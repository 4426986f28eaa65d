"""Imports every controller module so that each registers with the manager.

Add a line here for a new controller; the order does not matter.
"""

import hakube.controllers.clusterip  # noqa: F401
import hakube.controllers.cronjob  # noqa: F401
import hakube.controllers.daemonset  # noqa: F401
import hakube.controllers.endpoints  # noqa: F401
import hakube.controllers.hpa  # noqa: F401
import hakube.controllers.job  # noqa: F401
import hakube.controllers.statefulset  # noqa: F401
from hakube.controllers import namespace  # noqa: F401
