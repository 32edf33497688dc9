"""Readiness as a process reports it, and the log lines collectors read."""

from __future__ import annotations

import io
import logging
import logging.config
import time
from typing import Any
from wsgiref.util import setup_testing_defaults

import orjson
import pytest

from runtime.health import Health, lag_reason
from runtime.kafka import silence_reason
from runtime.logs import Repeats, logging_config
from runtime.reconnect import waiting_for


def get(health: Health, path: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(health.wsgi()(environ, lambda s, headers: status.append(s)))
    return status[0], body


def test_ready_only_once_the_process_says_so() -> None:
    health = Health("worker")
    status, body = get(health, "/ready")
    assert status.startswith("503")
    assert orjson.loads(body) == {"status": "not_ready", "process": "worker", "reason": "starting"}
    health.set(lag_reason(1500, 1000))
    assert orjson.loads(get(health, "/ready")[1])["reason"] == "1,500 records behind"
    health.set(lag_reason(1000, 1000))
    assert get(health, "/ready") == ("200 OK", b'{"status":"ready","process":"worker"}')


def test_alive_whatever_readiness_says_and_metrics_beside() -> None:
    health = Health("projector")
    assert get(health, "/health")[0] == "200 OK"
    status, body = get(health, "/metrics")
    assert status.startswith("200")
    assert b"subledger_consumer_lag_records" in body


def test_json_logs_carry_level_logger_process_extras_and_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.config.dictConfig(logging_config("info", "json", "worker"))
    log = logging.getLogger("subledger.test")
    log.info("folded %d messages", 3, extra={"agent": "profiles"})
    log.debug("not shown")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "info"
    assert first["message"] == "folded 3 messages"
    assert (first["logger"], first["process"], first["agent"]) == (
        "subledger.test",
        "worker",
        "profiles",
    )
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "error"
    assert "ValueError: bad" in second["exc"]
    logging.config.dictConfig(logging_config("warning"))


def test_ready_says_what_was_kept_aside_ready_or_not() -> None:
    health = Health("projector")
    health.count("dead_letters", 2)
    assert orjson.loads(get(health, "/ready")[1])["dead_letters"] == 2
    health.set(None)
    status, body = get(health, "/ready")
    assert status == "200 OK"
    assert orjson.loads(body) == {"status": "ready", "process": "projector", "dead_letters": 2}


class Fetching:
    """A consumer as aiokafka's, reduced to when each partition's fetch was last answered."""

    def __init__(self, answered: dict[str, float | None], paused: frozenset[str] = frozenset()):
        self.answered = answered
        self._paused = paused

    def assignment(self) -> set[str]:
        return set(self.answered)

    def paused(self) -> frozenset[str]:
        return self._paused

    def last_poll_timestamp(self, tp: str) -> int | None:
        at = self.answered[tp]
        return None if at is None else int(at * 1000)


def test_a_consumer_whose_broker_stopped_answering_is_not_ready() -> None:
    now = time.time()
    # One partition answered a moment ago: the broker is there.
    assert silence_reason(Fetching({"a": now - 60, "b": now - 0.1})) is None
    # No answer for a minute on any partition it fetches.
    reason = silence_reason(Fetching({"a": now - 60, "b": now - 61}))
    assert reason == "the broker has not answered for 60s; reconnecting"
    # Paused partitions are not fetched, so their silence says nothing; nor does a start.
    assert silence_reason(Fetching({"a": now - 60, "b": now}, paused=frozenset("b"))) is not None
    assert silence_reason(Fetching({"a": now - 60}, paused=frozenset("a"))) is None
    assert silence_reason(Fetching({"a": None})) is None


def test_a_process_started_while_what_it_needs_is_away_waits_for_it() -> None:
    said: list[str] = []
    attempts = iter([ConnectionRefusedError(), ConnectionRefusedError(), "reached"])

    def attempt() -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert waiting_for("the broker", attempt, (OSError,), 10.0, said.append) == "reached"
    assert said == [
        "the broker is out of reach (ConnectionRefusedError); trying again in 0.5s",
        "the broker is out of reach (ConnectionRefusedError); trying again in 1.0s",
    ]


def test_a_process_gives_up_waiting_after_its_patience() -> None:
    def attempt() -> None:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        waiting_for("the database", attempt, (OSError,), 0.0, lambda line: None)
    with pytest.raises(ValueError, match="invalid literal"):  # only a lost connection waits
        waiting_for("the database", lambda: int("x"), (OSError,), 10.0, lambda line: None)


def test_a_kafka_clients_repeated_complaint_is_let_through_once_in_a_while() -> None:
    repeats = Repeats(every=10.0)

    def record(name: str, msg: str, at: float) -> logging.LogRecord:
        line = logging.makeLogRecord({"name": name, "msg": msg, "args": (111,)})
        line.created = at
        return line

    complaints = [record("aiokafka", "Unable connect to node %s", t / 10) for t in range(150)]
    passed = [line for line in complaints if repeats.filter(line)]
    assert [line.created for line in passed] == [0.0, 10.0]
    assert passed[1].getMessage() == "Unable connect to node 111 [and 99 like it in 10s]"
    # Another complaint, or anyone else's line, is not held back.
    assert repeats.filter(record("aiokafka", "Unable to update metadata from %s", 10.5))
    assert all(repeats.filter(record("subledger", "one %s", 11.0)) for _ in range(3))
