"""Log line formats of every ``hakube`` process: ``--log-format text|json``.

JSON lines are built with ``json.dumps`` from the record, never by pasting the message into a
template, so a message with quotes, backslashes or newlines, or a traceback, is still exactly
one valid JSON object per line (log shippers drop or mangle anything else).
"""

from __future__ import annotations

import datetime
import json
import logging

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339, ms), level, logger, message, and
    ``exception`` / ``stack`` when the record carries them."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``--log-format`` ``fmt`` ("text" or "json")."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT)
