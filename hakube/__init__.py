"""hakube: a highly available container control plane with its own Raft-replicated store."""

import os as _os

# Masters fork to write Raft snapshots (pysyncobj's fork-based log compaction). With gRPC's fork
# support on, the forked child re-enters gRPC and can crash (SIGSEGV), so every compaction
# fails. hakube never uses gRPC in a forked child, so switch the support off before gRPC loads.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

__version__ = "0.1.0"
