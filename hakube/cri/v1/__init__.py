"""Generated stubs for the CRI ``runtime.v1`` subset in proto/hakube/cri/v1/api.proto."""
