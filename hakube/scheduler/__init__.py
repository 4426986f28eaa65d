"""The scheduler: assigns pending pods to nodes, one leader at a time.

Modules, in the order a pod meets them: ``queue`` (pending pods by priority then age, back-off,
the unschedulable pool), ``cache`` (nodes and the pods bound or assumed on them), ``podinfo``
(what a pod asks for), ``filters`` (may the pod go there? each failure names its reason),
``scores`` (where is it best?), ``explain`` (the "0/5 nodes are available: ..." message),
``preemption`` (make room by evicting lower-priority pods), ``scheduler`` (the loop and the
asynchronous binder), ``metrics``.
"""

from hakube.scheduler.scheduler import Scheduler, SchedulerConfig

__all__ = ["Scheduler", "SchedulerConfig"]
