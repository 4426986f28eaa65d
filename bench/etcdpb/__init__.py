"""Generated stubs for the subset of etcd v3's gRPC API the benchmarks speak (see proto/bench)."""
