"""The replicated object store: a deterministic state machine (fsm), replicated by pysyncobj
(raft), with group commit of concurrent writes (proposer)."""
