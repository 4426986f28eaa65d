"""Leader election on Lease objects, and the runner for leader-elected components."""

from hakube.leaderelection.component import Component, ComponentSettings, run_component
from hakube.leaderelection.elector import ElectionConfig, ElectionMetrics, LeaderElector

__all__ = [
    "Component",
    "ElectionConfig",
    "ElectionMetrics",
    "LeaderElector",
    "ComponentSettings",
    "run_component",
]
