"""Benchmarks of hakube against its peers; see docs/benchmarks.md for the latest figures.

Not part of the installed package: run from a checkout, e.g. ``python -m bench.bench_store``.
"""
