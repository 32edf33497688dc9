"""The migrations build exactly the tables the code declares."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from projections.migrate import upgrade
from projections.tables import metadata
from runtime.postgres import sqlalchemy_url

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_declared_tables(database: str) -> None:
    upgrade(database)  # again: a migrated database is left as it is
    engine = create_engine(sqlalchemy_url(database), poolclass=pool.NullPool)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []
