"""Generated stubs for the node agent API in proto/hakube/api/agent/v1/agent.proto."""
