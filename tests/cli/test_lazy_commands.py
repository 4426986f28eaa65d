"""``hakube COMMAND`` imports the module of that command only: start-up CPU of every master,
agent and CLI call (hakube.cli.main.COMMANDS)."""

from __future__ import annotations

import subprocess
import sys

from hakube.cli.main import COMMANDS, build_parser, command_word


def test_the_table_names_the_commands_each_module_registers() -> None:
    _, runners = build_parser()
    assert sorted(runners) == sorted(COMMANDS)
    for name in COMMANDS:
        assert list(build_parser(name)[1]) == [name]


def test_the_command_word_skips_global_flags_and_their_values() -> None:
    assert command_word(["--log-level", "debug", "--config", "master", "agent", "-x"]) == "agent"
    assert command_word(["--log-format=json", "master", "--name", "up"]) == "master"
    assert command_word(["--help", "master"]) is None
    assert command_word(["nonsense"]) is None
    assert command_word([]) is None


def test_an_agent_does_not_import_the_master_or_the_controllers() -> None:
    code = (
        "import sys\n"
        "from hakube.cli.main import build_parser, command_word\n"
        "build_parser(command_word(['agent', '--help']))\n"
        "print(sorted(m for m in ('hakube.master', 'hakube.controllers.all', 'hakube.dns')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
