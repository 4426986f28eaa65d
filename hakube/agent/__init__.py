"""The node agent (``hakube agent``): hakube's kubelet.

It registers its Node, keeps a Lease and node conditions current, and makes the pods bound to
its node run through a CRI runtime (containerd, or the simulated one), reporting their status
back. The modules, from the outside in:

* ``cli`` flags -> ``config.AgentSettings``; ``agent.Agent`` wires the parts and owns the
  threads (see its docstring).
* ``node``: Node registration, Lease renewal, node conditions.
* ``worker``: the per-pod reconcile (``PodSyncer``) fed by ``queue.WorkQueue``.
* ``runtime``: the pod's sandboxes and containers as the runtime holds them (CRI labels);
  ``status``: the pod status computed from them; ``env``/``volumes``: what a container is
  started with; ``backoff``: restart and pull back-off; ``probes``: liveness, readiness,
  startup; ``events``: Events about pods.
* ``server``: the agent's own gRPC API (logs, exec) that ``hakubectl`` reaches directly.

See docs/agent.md.
"""
