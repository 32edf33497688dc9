"""The migrations build exactly the tables the code declares."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from projections.migrate import upgrade
from projections.tables import metadata
from runtime.postgres import emptied, libpq_url, sqlalchemy_url

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_declared_tables(database: str) -> None:
    upgrade(database)  # again: a migrated database is left as it is
    engine = create_engine(sqlalchemy_url(database), poolclass=pool.NullPool)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_an_emptied_database_migrates_again_from_nothing(database: str) -> None:
    """What `subledger dev` does to its embedded database beside a fresh embedded broker:
    no read model or stored offset of an earlier run survives it."""
    with psycopg.connect(libpq_url(database), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " VALUES ('read_models', 'profile.snapshots', 0, 386)"
        )
    emptied(database)
    upgrade(database)
    with psycopg.connect(libpq_url(database)) as connection:
        (offsets,) = connection.execute("SELECT count(*) FROM projection_offsets").fetchone()
    assert offsets == 0
