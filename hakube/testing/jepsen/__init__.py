"""Checking what a cluster did under faults: histories of client operations and the checkers
that judge them (linearizable registers, sets, watch completeness, lease exclusivity)."""
