"""Generated stubs for the node agent API in proto/hakube/agent/v1/agent.proto."""
