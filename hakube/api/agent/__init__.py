"""Wire types of the node agent's own API (stubs under ``v1``)."""
