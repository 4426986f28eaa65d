"""``python -m hakube.cli.ctl``: the same program as ``hakubectl``."""

import sys

from hakube.cli.ctl import cli

sys.exit(cli())
