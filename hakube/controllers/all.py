"""Imports every controller module so that each registers with the manager.

Add a line here for a new controller; the order does not matter.
"""

import hakube.controllers.clusterip  # noqa: F401
import hakube.controllers.cronjob  # noqa: F401
import hakube.controllers.daemonset  # noqa: F401
import hakube.controllers.deployment  # noqa: F401
import hakube.controllers.endpoints  # noqa: F401
import hakube.controllers.garbagecollector  # noqa: F401
import hakube.controllers.hpa  # noqa: F401
import hakube.controllers.job  # noqa: F401
import hakube.controllers.namespace  # noqa: F401
import hakube.controllers.nodeipam  # noqa: F401
import hakube.controllers.nodelifecycle  # noqa: F401
import hakube.controllers.podgc  # noqa: F401
import hakube.controllers.replicaset  # noqa: F401
import hakube.controllers.serviceaccount  # noqa: F401
import hakube.controllers.statefulset  # noqa: F401
import hakube.controllers.tokencleaner  # noqa: F401
