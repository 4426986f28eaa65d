"""The node agent's side of the Container Runtime Interface (CRI).

``hakube.cri.v1`` holds the generated ``runtime.v1`` stubs, ``client`` the typed client the
agent drives containerd with, and ``simulated`` an in-process CRI server for tests that need
many nodes but no real containers.
"""
