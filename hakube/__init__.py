"""hakube: a highly available container control plane with its own Raft-replicated store."""

__version__ = "0.1.0"
