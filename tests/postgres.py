"""Test databases: one server per session, a fresh migrated database per test.

The server is `SUBLEDGER_TEST_DATABASE_URL` when set, else an embedded PostgreSQL. Each
test gets a copy of a template migrated once, which takes milliseconds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from projections.migrate import upgrade
from runtime.postgres import embedded_postgres, with_database

TEMPLATE = "subledger_template"


@contextmanager
def server_for_tests(data_dir: Path) -> Iterator[str]:
    """The server URL, with a migrated template database on it."""
    given = os.environ.get("SUBLEDGER_TEST_DATABASE_URL")
    if given:
        _make_template(given)
        yield given
        return
    with embedded_postgres(data_dir, delete=True) as url:
        _make_template(url)
        yield url


def _make_template(server: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {TEMPLATE}")
    upgrade(with_database(server, TEMPLATE))


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = f"subledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
