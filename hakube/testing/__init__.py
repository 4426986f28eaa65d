"""Harnesses for tests, benchmarks and `hakube up`: real processes, real sockets, on loopback."""
