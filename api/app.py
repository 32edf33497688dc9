"""The HTTP service: store webhooks (ingress), the query API and the server-side API."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import contract
from api.auth import ApiKeys
from api.commands import CommandBus, Projections
from api.console.pages import console
from api.console.session import Sessions
from api.errors import ApiError, api_error, database_unavailable, http_error, invalid_request
from api.profiles import query_router
from api.reads import ReadModels
from api.server_side import server_side_router
from api.webhooks import webhooks_router
from ingress.app import Ingress, create_app
from processors.normalize.money import Rates
from runtime.catalog import load_catalog
from runtime.postgres import sqlalchemy_url
from runtime.settings import Settings

SPEC_FILE = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


class _Unpublished:
    """A publisher for an app that only describes itself."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        raise RuntimeError("the described app publishes nothing")

    async def unavailable(self) -> str | None:
        return None


def openapi_document() -> dict[str, Any]:
    """The HTTP service's OpenAPI document, as it serves it at /openapi.json (committed as
    docs/openapi.json by `subledger openapi`)."""
    engine = database_engine("postgresql://127.0.0.1:1/unused")
    app = create_api(Ingress(load_catalog(), _Unpublished()), engine, Settings(console=False))
    return app.openapi()


def database_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url, is_async=True),
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        # A statement's parameters (search terms, emails) stay out of errors and logs.
        hide_parameters=True,
    )


def create_api(
    ingress: Ingress,
    engine: AsyncEngine,
    settings: Settings,
    lifespan: Any = None,
    projections: Projections | None = None,
) -> FastAPI:
    """The HTTP service; `projections` wakes server-side API calls as the projector
    commits (fed by `Projections.listen`, which the caller runs)."""
    app = create_app(ingress, lifespan, docs=settings.api_docs)
    app.title = "subledger"
    reads = ReadModels(engine)
    bus = CommandBus(
        ingress.catalog, ingress.publisher, reads, settings.read_your_writes_seconds, projections
    )
    keys = ApiKeys(key.get_secret_value() for key in settings.api_keys)
    rates = Rates.load(settings.rates_file)
    app.include_router(query_router(reads, keys))
    app.include_router(server_side_router(bus, reads, keys, settings.api_app_id, rates))
    app.include_router(webhooks_router(engine, keys, settings.webhook_private_addresses))
    if settings.console:
        sessions = Sessions(
            (key.get_secret_value() for key in settings.api_keys), settings.console_session_seconds
        )
        console(app, reads, sessions, sorted(settings.access_levels))
    app.openapi = partial(contract.document, app)  # type: ignore[method-assign]
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # The database restarting or unreachable: retry later, not a server error.
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "process": "api"}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        """Ready when the broker and the read models answer."""
        reason = await ingress.publisher.unavailable()
        if reason is None:
            try:
                async with asyncio.timeout(2.0), engine.connect() as connection:
                    await connection.execute(text("select 1"))
            except (TimeoutError, SQLAlchemyError, OSError) as error:
                reason = f"the database does not answer: {type(error).__name__}"
        if reason is None:
            return JSONResponse({"status": "ready", "process": "api"})
        return JSONResponse(
            {"status": "not_ready", "process": "api", "reason": reason}, status_code=503
        )

    return app
