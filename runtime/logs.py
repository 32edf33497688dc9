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


class Repeats(logging.Filter):
    """A Kafka client's complaint, once per `every` seconds: aiokafka logs each failed
    reconnect and fetch, dozens a second while a broker is away, which would bury
    everything else. The line let through says how many like it were held back."""

    def __init__(self, every: float = 10.0, loggers: tuple[str, ...] = ("aiokafka",)) -> None:
        super().__init__()
        self.every = every
        self.loggers = loggers
        # (logger, message template) -> [when last let through, held back since]
        self._seen: dict[tuple[str, object], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.loggers):
            return True
        key = (record.name, record.msg)
        seen = self._seen.get(key)
        if seen is not None and record.created - seen[0] < self.every:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [and {seen[1]:.0f} like it in {self.every:g}s]"
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = [record.created, 0]
        return True


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
        "filters": {"repeats": {"()": Repeats}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": ["repeats"],
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
