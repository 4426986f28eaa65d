"""``python -m hakube.testing.lazyfs BACKING MOUNTPOINT``: serve one lazy file system."""

import sys

from hakube.testing.lazyfs.fs import main

sys.exit(main(sys.argv[1:]))
