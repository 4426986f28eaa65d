"""A file system for tests that forgets, on a power cut, everything that was not fsynced.

``model`` holds the rules (what a cut keeps: synced bytes, names made durable by a directory
fsync), ``fs`` serves them over FUSE, ``mount.LazyFS`` mounts, cuts and unmounts from a test.
"""

from hakube.testing.lazyfs.mount import LazyFS, unavailable_reason

__all__ = ["LazyFS", "unavailable_reason"]
