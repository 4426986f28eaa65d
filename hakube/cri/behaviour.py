"""What a simulated container does, read from its command line and annotations.

The simulated runtime runs no processes; a container "runs" according to a ``Behaviour``
decided once, at create time, from what the pod declared:

* ``sleep N``                          runs N seconds, exits 0
* ``true`` / ``false``                 exits 0 / 1 at once
* ``sh -c "echo hi; sleep 2; exit 3"`` a tiny subset of sh: ``echo``, ``sleep``, ``exit``,
                                       ``true``, ``false``, separated by ``;``, ``&&`` or
                                       newlines; other commands count as instant successes,
                                       ``while true``/``while :`` loops forever and
                                       ``exec CMD`` ends the script as CMD alone would run
* anything else (``nginx``, no command) runs until stopped

Annotations override the command (so a controller test can say "this pod fails after 2 s"
without caring about its command line):

* ``sim.hakube.io/run-seconds``   how long it runs; ``"inf"`` for forever
* ``sim.hakube.io/exit-code``     its exit code when it finishes on its own
* ``sim.hakube.io/oom``           ``"true"``: it ends OOMKilled (exit 137)
* ``sim.hakube.io/ignore-sigterm`` ``"true"``: StopContainer kills it (137), else 143
* ``sim.hakube.io/cpu-millis``    CPU it uses while running (stats); default 10
* ``sim.hakube.io/memory-bytes``  working set it reports (stats); default 4 MiB

Parsing is pure and side-effect free, so it is tested without any server.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ANNOTATION_PREFIX = "sim.hakube.io/"
RUN_SECONDS = ANNOTATION_PREFIX + "run-seconds"
EXIT_CODE = ANNOTATION_PREFIX + "exit-code"
OOM = ANNOTATION_PREFIX + "oom"
IGNORE_SIGTERM = ANNOTATION_PREFIX + "ignore-sigterm"
CPU_MILLIS = ANNOTATION_PREFIX + "cpu-millis"
MEMORY_BYTES = ANNOTATION_PREFIX + "memory-bytes"

DEFAULT_CPU_MILLIS = 10
DEFAULT_MEMORY_BYTES = 4 * 1024 * 1024

_SHELLS = {"sh", "bash", "ash", "dash"}


@dataclass(frozen=True)
class Behaviour:
    """A simulated process: how long it runs, how it ends, what it prints."""

    run_seconds: float = math.inf
    exit_code: int = 0
    oom: bool = False
    ignore_sigterm: bool = False
    output: tuple[tuple[str, str], ...] = ()
    """Lines it prints at start, as (stream, line) with stream "stdout" or "stderr"."""
    cpu_millis: int = DEFAULT_CPU_MILLIS
    memory_bytes: int = DEFAULT_MEMORY_BYTES

    @property
    def finishes(self) -> bool:
        return math.isfinite(self.run_seconds)


@dataclass(frozen=True)
class ScriptResult:
    """Outcome of interpreting a command line."""

    seconds: float
    exit_code: int
    output: tuple[tuple[str, str], ...]
    forever: bool


def run_script(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ScriptResult:
    """Interpret ``argv`` (a command with its arguments) the way the simulator understands it;
    ``$VAR`` / ``${VAR}`` in a shell script expand from ``env``."""
    if not argv:
        return ScriptResult(0.0, 0, (), forever=True)
    prog = argv[0].rsplit("/", 1)[-1]
    if prog in _SHELLS and len(argv) >= 3 and argv[1] == "-c":
        return _run_shell(_expand(argv[2], env or {}))
    return _run_simple(prog, list(argv[1:]), top_level=True)


def _expand(script: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), script)


def _run_simple(prog: str, args: list[str], *, top_level: bool) -> ScriptResult:
    if prog == "sleep":
        return ScriptResult(_seconds(args), 0, (), forever=False)
    if prog == "true":
        return ScriptResult(0.0, 0, (), forever=False)
    if prog == "false":
        return ScriptResult(0.0, 1, (), forever=False)
    if prog == "echo":
        stream = "stdout"
        if any(a in (">&2", "1>&2") for a in args):
            stream = "stderr"
        words = [a for a in args if a not in (">&2", "1>&2")]
        if any(a.startswith(">") for a in words):  # redirected to a file: not in the log
            return ScriptResult(0.0, 0, (), forever=False)
        return ScriptResult(0.0, 0, ((stream, " ".join(words)),), forever=False)
    if prog == "exit":
        return ScriptResult(0.0, int(args[0]) if args else 0, (), forever=False)
    # An unknown program as the whole command is a server: it runs until stopped. Inside a
    # script it is taken as a quick success, so scripts keep their declared shape.
    return ScriptResult(0.0, 0, (), forever=top_level)


def _run_shell(script: str) -> ScriptResult:
    seconds, code = 0.0, 0
    out: list[tuple[str, str]] = []
    for raw in re.split(r";|&&|\n", script):
        words = _split(raw)
        if not words:
            continue
        if words[0] == "while" and words[1:2] in (["true"], [":"]):
            return ScriptResult(math.inf, 0, tuple(out), forever=False)  # an endless loop
        if words[0] == "exec" and len(words) > 1:
            # The shell becomes the program: it behaves as that program run on its own (a
            # server runs until stopped), after what the script did before.
            step = _run_simple(words[1].rsplit("/", 1)[-1], words[2:], top_level=True)
            out.extend(step.output)
            if step.forever:
                return ScriptResult(seconds, 0, tuple(out), forever=True)
            return ScriptResult(seconds + step.seconds, step.exit_code, tuple(out), False)
        step = _run_simple(words[0], words[1:], top_level=False)
        seconds += step.seconds
        out.extend(step.output)
        code = step.exit_code
        if words[0] == "exit":
            break
    return ScriptResult(seconds, code, tuple(out), forever=False)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _seconds(args: Sequence[str]) -> float:
    if not args:
        return 0.0
    value = args[0].lower()
    if value in ("inf", "infinity"):
        return math.inf
    try:
        return float(value.rstrip("s"))
    except ValueError:
        return 0.0


def behaviour_of(
    argv: Sequence[str], annotations: Mapping[str, str], env: Mapping[str, str] | None = None
) -> Behaviour:
    """The behaviour a container declares through its command line and annotations."""
    result = run_script(argv, env)
    run_seconds = math.inf if result.forever else result.seconds
    exit_code = result.exit_code
    if RUN_SECONDS in annotations:
        run_seconds = _seconds([annotations[RUN_SECONDS]])
    if EXIT_CODE in annotations:
        exit_code = int(annotations[EXIT_CODE])
    oom = annotations.get(OOM, "").lower() == "true"
    if oom:
        exit_code = 137
    return Behaviour(
        run_seconds=run_seconds,
        exit_code=exit_code,
        oom=oom,
        ignore_sigterm=annotations.get(IGNORE_SIGTERM, "").lower() == "true",
        output=result.output,
        cpu_millis=int(annotations.get(CPU_MILLIS, DEFAULT_CPU_MILLIS)),
        memory_bytes=int(annotations.get(MEMORY_BYTES, DEFAULT_MEMORY_BYTES)),
    )
