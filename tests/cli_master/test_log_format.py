"""``--log-format json`` writes one valid JSON object per line, whatever the message holds."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

from hakube.cli.logfmt import JsonFormatter


def test_json_lines_stay_valid_with_quotes_newlines_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("hakube.test.logfmt")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning('member "m2" said: %s', 'a\\b "quoted"\nsecond line')
        try:
            raise ValueError('bad "value"')
        except ValueError:
            log.exception("it failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == 'member "m2" said: a\\b "quoted"\nsecond line'
    assert first["level"] == "WARNING" and first["logger"] == "hakube.test.logfmt"
    assert first["time"].endswith("Z")
    assert second["message"] == "it failed"
    assert 'ValueError: bad "value"' in second["exception"]


def test_a_hakube_process_logs_json_lines() -> None:
    """The setup every hakube command uses, in a process of its own."""
    code = (
        "import logging, sys; from hakube.cli.main import setup_logging; "
        "setup_logging('info', 'json'); "
        "logging.getLogger('hakube.x').info('say \"hi\"\\nthere')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    (line,) = r.stderr.splitlines()
    assert json.loads(line)["message"] == 'say "hi"\nthere'
