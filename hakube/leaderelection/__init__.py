"""Leader election on Lease objects, and the runner for leader-elected components."""

from hakube.leaderelection.component import Component, add_component_flags, run_component
from hakube.leaderelection.elector import ElectionConfig, ElectionMetrics, LeaderElector

__all__ = [
    "Component",
    "ElectionConfig",
    "ElectionMetrics",
    "LeaderElector",
    "add_component_flags",
    "run_component",
]
