"""Logging for every process: text for a terminal, one JSON object per line for collectors.

A JSON line holds `ts` (UTC, ISO 8601), `level`, `logger`, `message`, the process role,
any `extra={...}` fields the call passed, and `exc` with the traceback of an exception.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


# The Kafka and HTTP clients log every request at DEBUG or INFO: never on the hot path.
_NOISY = ("aiokafka", "faust", "mode", "httpx", "httpcore")


def logging_config(
    level: str, form: Literal["text", "json"] = "text", process: str = "subledger"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for stderr at `level`; the clients' request chatter
    only at INFO or above (WARNING for the HTTP and Kafka clients)."""
    number = logging.getLevelName(level.upper())
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "process": process}
        if form == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    quiet = {
        name: {"level": max(logging.INFO if name in ("faust", "mode") else logging.WARNING, number)}
        for name in _NOISY
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": quiet,
        "root": {"level": number, "handlers": ["stderr"]},
    }


def configure_logging(
    level: str, form: Literal["text", "json"] = "text", process: str = "subledger"
) -> None:
    logging.config.dictConfig(logging_config(level, form, process))
