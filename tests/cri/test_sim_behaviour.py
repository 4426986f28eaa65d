"""Reading a simulated container's behaviour from its command line and annotations."""

from __future__ import annotations

import math

from hakube.cri.behaviour import (
    CPU_MILLIS,
    EXIT_CODE,
    IGNORE_SIGTERM,
    MEMORY_BYTES,
    OOM,
    RUN_SECONDS,
    behaviour_of,
    run_script,
)


def test_sleep_runs_for_its_seconds_and_succeeds():
    b = behaviour_of(["sleep", "2.5"], {})
    assert (b.run_seconds, b.exit_code, b.finishes) == (2.5, 0, True)


def test_true_false_and_exit_end_at_once_with_their_codes():
    assert behaviour_of(["true"], {}).exit_code == 0
    assert behaviour_of(["/bin/false"], {}).exit_code == 1
    assert behaviour_of(["sh", "-c", "exit 7"], {}).exit_code == 7


def test_a_shell_script_adds_its_sleeps_stops_at_exit_and_prints_its_echoes():
    b = behaviour_of(
        ["sh", "-c", "echo start $X; sleep 1 && sleep 2\necho e >&2; exit 3; sleep 9"],
        {},
        {"X": "now"},
    )
    assert (b.run_seconds, b.exit_code) == (3.0, 3)
    assert b.output == (("stdout", "start now"), ("stderr", "e"))


def test_an_unknown_program_is_a_server_that_runs_until_stopped():
    assert not behaviour_of(["nginx", "-g", "daemon off;"], {}).finishes
    assert not behaviour_of([], {}).finishes
    assert behaviour_of(["sh", "-c", "while true; do sleep 1; done"], {}).run_seconds == math.inf
    assert behaviour_of(["sleep", "infinity"], {}).run_seconds == math.inf


def test_a_script_that_execs_a_program_behaves_as_that_program():
    # examples/hello.yaml's web container: write a page, then become the web server.
    page_then_server = 'echo "hi from $(hostname)" > /tmp/index.html && exec httpd -f -p 8080'
    assert not behaviour_of(["sh", "-c", page_then_server], {}).finishes
    assert behaviour_of(["sh", "-c", "sleep 1; exec sleep 2"], {}).run_seconds == 3
    hello = behaviour_of(["sh", "-c", "echo hi; exec false"], {})
    assert (hello.exit_code, hello.output) == (1, (("stdout", "hi"),))


def test_annotations_override_the_command_line():
    b = behaviour_of(
        ["sleep", "100"],
        {
            RUN_SECONDS: "3",
            EXIT_CODE: "9",
            IGNORE_SIGTERM: "true",
            CPU_MILLIS: "250",
            MEMORY_BYTES: "1024",
        },
    )
    assert (b.run_seconds, b.exit_code, b.ignore_sigterm) == (3.0, 9, True)
    assert (b.cpu_millis, b.memory_bytes) == (250, 1024)
    assert behaviour_of([], {RUN_SECONDS: "inf"}).run_seconds == math.inf


def test_oom_means_exit_137():
    b = behaviour_of(["sleep", "1"], {OOM: "true"})
    assert (b.oom, b.exit_code) == (True, 137)


def test_exec_style_commands_give_output_and_codes():
    r = run_script(["sh", "-c", "echo out; echo err 1>&2; false"])
    assert r.output == (("stdout", "out"), ("stderr", "err"))
    assert r.exit_code == 1
    assert run_script(["echo", "a", "b"]).output == (("stdout", "a b"),)
