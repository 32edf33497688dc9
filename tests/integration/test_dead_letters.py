"""`subledger dead-letters`: an operator sees what the worker and the projector could not
take, without its content, and re-drives it to where it came from."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.stack import ROOT, Stack

pytestmark = pytest.mark.integration


def dead_letters(stack: Stack, *options: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SUBLEDGER_KAFKA_BOOTSTRAP": stack.bootstrap,
        "SUBLEDGER_TOPIC_PREFIX": stack.prefix,
        "SUBLEDGER_DATABASE_URL": stack.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "dead-letters", *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_dead_letters_are_listed_without_content_and_redriven(stack: Stack) -> None:
    commands = stack.catalog["profile_commands"].name
    secret = "ann@example.com"
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send(commands, f'{{"kind": "nonsense", "email": "{secret}"}}'.encode())
        await producer.flush()
    finally:
        await producer.stop()
    stack.start_worker()
    letters = await stack.read("dead_letters", lambda records: len(records) >= 1, timeout=90)
    assert letters[0]["source_topic"] == commands
    snapshots = stack.catalog["profile_snapshots"].name
    async with await psycopg.AsyncConnection.connect(stack.database_url) as connection:
        await connection.execute(
            "INSERT INTO projection_dead_letters VALUES (%s, 0, 7, 'DataError: x', %s, now())",
            (snapshots, b'{"profile_id": "nope"}'),
        )
        await connection.commit()

    listed = dead_letters(stack, "list")
    assert listed.returncode == 0, listed.stderr
    lines = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert {(line["source"], line["topic"]) for line in lines} == {
        ("worker", commands),
        ("projector", snapshots),
    }
    assert secret not in listed.stdout

    redriven = dead_letters(stack, "redrive", "--source", "projector")
    assert redriven.returncode == 0, redriven.stderr
    assert "re-driven: 1 records" in redriven.stderr
    again = await stack.read("profile_snapshots", lambda records: bool(records), timeout=30)
    assert {"profile_id": "nope"} in again
    after = dead_letters(stack, "list", "--source", "projector")
    assert after.stdout.strip() == ""


def test_the_dispatchers_undelivered_are_listed_and_redriven(stack: Stack) -> None:
    """A delivery that gave up, and one that a disabled endpoint holds."""
    live, disabled = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for endpoint, disabled_at in ((live, None), (disabled, datetime.now(UTC))):
            connection.execute(
                "INSERT INTO webhook_endpoints (endpoint_id, url, event_types, environment, "
                "secrets, created_at, disabled_at) VALUES "
                "(%s, 'http://127.0.0.1:9/', '{}', 'both', '{whsec_x}', now(), %s)",
                (endpoint, disabled_at),
            )
        for n, (endpoint, status) in enumerate(((live, "failed"), (disabled, "pending"))):
            connection.execute(
                "INSERT INTO webhook_deliveries (webhook_id, endpoint_id, profile_event_id, "
                "profile_id, event_type, sequence, payload, status, attempts, next_attempt_at, "
                "created_at, last_status_code) VALUES (%s, %s, gen_random_uuid(), "
                "gen_random_uuid(), 'profile_created', %s, '{}', %s, 7, now(), now(), 500)",
                (f"msg_{n}", endpoint, n, status),
            )
    listed = dead_letters(stack, "list", "--source", "dispatcher")
    assert listed.returncode == 0, listed.stderr
    lines = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(line["source"], line["reason"]) for line in lines] == [
        ("dispatcher", "HTTP 500"),
        ("dispatcher", "the endpoint is disabled"),
    ]
    redriven = dead_letters(stack, "redrive", "--source", "dispatcher")
    assert redriven.returncode == 0, redriven.stderr
    assert "re-driven: 1 webhook deliveries" in redriven.stderr
    with psycopg.connect(stack.database_url) as connection:
        statuses = connection.execute(
            "SELECT webhook_id, status FROM webhook_deliveries ORDER BY webhook_id"
        ).fetchall()
    assert statuses == [("msg_0", "pending"), ("msg_1", "pending")]
