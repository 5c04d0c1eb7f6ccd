"""Log lines for people and for machines.

Modules log with fields: `log.info("model loaded", extra={"model": name, "pid": pid})`. The text
form prints them after the message as `key=value` (quoted when they contain spaces), as Go's
slog does for Ollama; `TRIO_OLLAMA_LOG_FORMAT=json` writes one JSON object per line instead,
with the fields as keys, for log collectors.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
FORMAT_VARIABLE = "TRIO_OLLAMA_LOG_FORMAT"

# What every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[:1] != "_"}


def _text_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`logging.Formatter`, with the record's fields after the message as `key=value`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        extra = fields(record)
        line = super().formatMessage(record)
        return line + "".join(f" {k}={_text_value(v)}" for k, v in extra.items())


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, the fields, and any traceback."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        for key, value in fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def parse_log_format(value: str) -> LogFormat:
    """The format `TRIO_OLLAMA_LOG_FORMAT` names; text when unset or unknown."""
    wanted = value.strip().lower()
    for known in LOG_FORMATS:
        if wanted == known:
            return known
    if wanted:
        logging.getLogger(__name__).warning(
            "unknown log format, using text", extra={"key": FORMAT_VARIABLE, "value": value}
        )
    return "text"


def configure(
    level: int, log_format: LogFormat, *, text: str, static: dict[str, Any] | None = None
) -> None:
    """Send the root logger's records to stderr in `log_format`.

    `text` is the text form's `logging` format string (the fields follow it); `static` fields
    go into every JSON line (a runner adds its pid).
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter(static))
    else:
        handler.setFormatter(TextFormatter(text))
    logging.basicConfig(level=level, handlers=[handler])
    if level > logging.DEBUG:
        # httpx logs each request at INFO: a pull is dozens of ranged GETs, and an upload's
        # URLs carry the registry's signed upload state. With OLLAMA_DEBUG they show.
        logging.getLogger("httpx").setLevel(logging.WARNING)
