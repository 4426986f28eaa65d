"""The local-cluster runtime: hakube's processes on this machine.

``procs`` spawns a child (``python -m hakube ...`` in its own session, log appended);
``supervisor`` watches children and restarts them with one back-off policy; ``cluster`` runs
master processes with known ports; ``agents`` and ``components`` run node agents and the
scheduler/controller-manager as processes. ``hakube up`` runs a cluster for people with them;
``hakube.testing`` builds its test clusters on the same code (with a CA shared by the test
process instead of the cluster's own) and is never imported from here.
"""
