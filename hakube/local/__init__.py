"""Local clusters: real ``hakube master`` processes on 127.0.0.1 with known ports.

``hakube up`` runs one for people; ``hakube.testing`` builds its test clusters on the same code
(with a CA shared by the test process instead of the cluster's own).
"""
