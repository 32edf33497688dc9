"""Commands that run subledger's processes: the embedded broker, topics, the worker."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager, suppress
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import OperationalError

from projections.migrate import upgrade
from runtime.broker import BrokerError, EmbeddedBroker
from runtime.catalog import Catalog, CatalogError, load_catalog
from runtime.collector import collect_seldom
from runtime.health import Health
from runtime.logs import configure_logging, logging_config
from runtime.postgres import DatabaseError, database, embedded_postgres, emptied
from runtime.reconnect import waiting_for
from runtime.settings import Settings
from runtime.topics import TopicMismatchError, apply_topics

if TYPE_CHECKING:
    from ingress.app import GooglePlay
    from ingress.apple import AppleVerifier
    from ingress.stripe_webhook import StripeInvoices, StripeVerifier

topics_app = typer.Typer(help="The topics of topics.yaml.", no_args_is_help=True)


def _catalog(settings: Settings) -> Catalog:
    try:
        catalog = load_catalog().with_version(settings.processor_version)
        return catalog.with_prefix(settings.topic_prefix)
    except CatalogError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error


def _apply(catalog: Catalog, bootstrap: str, patience: float = 0.0) -> None:
    """Create the missing topics; wait up to `patience` seconds for the broker to answer."""
    try:
        applied = waiting_for(
            f"the broker at {bootstrap}",
            lambda: asyncio.run(apply_topics(catalog, bootstrap)),
            (KafkaError, OSError),
            patience,
            _say,
        )
    except (KafkaError, OSError) as error:
        typer.echo(f"error: the broker at {bootstrap} is out of reach: {error}", err=True)
        raise typer.Exit(code=1) from error
    except TopicMismatchError as error:
        typer.echo(f"error: the broker disagrees with topics.yaml: {error}", err=True)
        raise typer.Exit(code=1) from error
    if applied.created:
        typer.echo(f"created {len(applied.created)} topics on {bootstrap}", err=True)


@topics_app.command("apply")
def topics_apply(
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (default: SUBLEDGER_KAFKA_BOOTSTRAP).")
    ] = None,
) -> None:
    """Create the missing topics; fail when an existing one has other partitions or policy."""
    settings = Settings()
    target = bootstrap or settings.kafka_bootstrap
    if target is None:
        typer.echo("error: give --bootstrap or set SUBLEDGER_KAFKA_BOOTSTRAP", err=True)
        raise typer.Exit(code=2)
    _apply(_catalog(settings), target)


def broker(
    port: Annotated[int, typer.Option(help="Loopback port to listen on.")] = 19092,
) -> None:
    """Run the embedded development broker (memory only) until interrupted."""
    stop = {signal.SIGINT, signal.SIGTERM}
    try:
        with EmbeddedBroker(port=port) as running:
            # Blocked only now, so that the broker itself still takes SIGINT when stopped.
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)
            typer.echo(f"broker ready: KAFKA_BOOTSTRAP={running.bootstrap}", err=True)
            signal.sigwait(stop)
    except BrokerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error


def worker(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run the stream processor against KAFKA_BOOTSTRAP, or an embedded broker when unset."""
    from faust import Worker

    from processors.stream.processor import Processor

    settings = Settings()
    catalog = _catalog(settings)
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        _apply(catalog, bootstrap, settings.patience_seconds)
        processor = Processor(settings, catalog, bootstrap)
        asyncio.run(processor.discard_stale_tables())
        collect_seldom()
        _serve_health(settings, processor.health)
        Worker(
            processor.app,
            loglevel=loglevel,
            quiet=True,
            logging_config=logging_config(loglevel, settings.log_format, "worker"),
        ).execute_from_commandline()


class Loop(StrEnum):
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class Http(StrEnum):
    HTTPTOOLS = "httptools"
    H11 = "h11"


def api(
    host: Annotated[
        str | None, typer.Option(help="Interface (default SUBLEDGER_INGRESS_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SUBLEDGER_INGRESS_PORT).")] = None,
    loop: Annotated[
        Loop, typer.Option(help="Event loop: uvloop, or the standard library's asyncio.")
    ] = Loop.UVLOOP,
    http: Annotated[
        Http, typer.Option(help="HTTP/1.1 parser: httptools (compiled), or h11 (pure Python).")
    ] = Http.HTTPTOOLS,
) -> None:
    """Serve the store webhooks, the query API and the server-side API.

    Uses KAFKA_BOOTSTRAP and DATABASE_URL, or the embedded broker and PostgreSQL when unset.
    """
    import uvicorn

    from api.app import create_api, database_engine
    from api.commands import Projections
    from ingress.app import Ingress, running
    from ingress.publisher import KafkaPublisher

    settings = Settings()
    configure_logging("warning", settings.log_format, "api")
    catalog = _catalog(settings)
    apple, stripe, google = _stores(settings)
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        url = _database(settings, stack)
        _apply(catalog, bootstrap, settings.patience_seconds)
        publisher = KafkaPublisher(bootstrap, settings.broker_flavor)
        engine = database_engine(url)
        projections = Projections()

        @asynccontextmanager
        async def lifespan(_: object) -> AsyncIterator[None]:
            listening = asyncio.create_task(projections.listen(url))
            async with running(publisher):
                try:
                    yield
                finally:
                    listening.cancel()
                    await engine.dispose()

        app = create_api(
            Ingress(
                catalog,
                publisher,
                apple,
                stripe,
                google,
                stripe_api=_stripe_api(settings),
                max_body_bytes=settings.max_body_bytes,
            ),
            engine,
            settings,
            lifespan,
            projections,
        )
        uvicorn.run(
            app,
            host=host or settings.ingress_host,
            port=port or settings.ingress_port,
            loop=loop.value,
            http=http.value,
            log_level="warning",
            access_log=False,
        )


def project(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Project profile snapshots, events and command outcomes into the PostgreSQL read models."""
    from projections.projector import Projector

    settings = Settings()
    catalog = _catalog(settings)
    configure_logging(loglevel, settings.log_format, "projector")
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        url = _database(settings, stack)
        _apply(catalog, bootstrap, settings.patience_seconds)
        projector = Projector(
            catalog,
            bootstrap,
            url,
            settings.projection_batch_size,
            settings.broker_flavor,
            ready_lag=settings.ready_lag,
        )
        _serve_health(settings, projector.health)
        with suppress(KeyboardInterrupt):
            asyncio.run(_until_signalled(projector.run))


def dispatch(
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Send the webhook deliveries the projector queued: signed, retried, ordered."""
    from projections.webhooks import Dispatcher

    settings = Settings()
    configure_logging(loglevel, settings.log_format, "dispatcher")
    with ExitStack() as stack:
        url = _database(settings, stack)
        dispatcher = Dispatcher(url, allow_private=settings.webhook_private_addresses)
        _serve_health(settings, dispatcher.health)
        with suppress(KeyboardInterrupt):
            asyncio.run(_until_signalled(dispatcher.run))


def _serve_health(settings: Settings, health: Health) -> None:
    if settings.metrics_port is not None:
        health.serve(settings.metrics_port, settings.metrics_host)


async def _until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run(stop)


def migrate() -> None:
    """Apply the read-model migrations to DATABASE_URL (or the embedded PostgreSQL)."""
    settings = Settings()
    with ExitStack() as stack:
        _database(settings, stack)
    typer.echo("read models migrated", err=True)


def postgres() -> None:
    """Run the embedded PostgreSQL (data in SUBLEDGER_POSTGRES_DIR) until interrupted."""
    stop = {signal.SIGINT, signal.SIGTERM}
    settings = Settings()
    try:
        with embedded_postgres(settings.postgres_dir) as url:
            upgrade(url)
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)
            typer.echo(f"postgres ready: DATABASE_URL={url}", err=True)
            signal.sigwait(stop)
    except DatabaseError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _bootstrap(settings: Settings, stack: ExitStack) -> str:
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        typer.echo(f"embedded broker: KAFKA_BOOTSTRAP={bootstrap}", err=True)
    return bootstrap


def _database(settings: Settings, stack: ExitStack, *, empty: bool = False) -> str:
    """DATABASE_URL, or the embedded PostgreSQL; migrated either way. `empty` starts the
    embedded one with nothing in it (never a database the caller names)."""
    try:
        url = stack.enter_context(database(settings.database_url, settings.postgres_dir))
        if settings.database_url is None:
            if empty:
                emptied(url)
            typer.echo(f"embedded postgres: DATABASE_URL={url}", err=True)
        patience = settings.patience_seconds
        waiting_for("the database", lambda: upgrade(url), (OperationalError,), patience, _say)
    except (DatabaseError, OperationalError) as error:
        typer.echo(f"error: the database is out of reach: {error}", err=True)
        raise typer.Exit(code=1) from error
    return url


def _stores(
    settings: Settings,
) -> tuple[AppleVerifier | None, StripeVerifier | None, GooglePlay | None]:
    """The verifiers of the stores that are configured."""
    from ingress.apple import AppleVerifier
    from ingress.stripe_webhook import StripeVerifier

    apple = None
    if settings.apple_bundle_id:
        roots = [path.read_bytes() for path in settings.apple_root_certificates]
        apple = AppleVerifier(
            roots, settings.apple_environment, settings.apple_bundle_id, settings.apple_app_apple_id
        )
    secrets = [s.get_secret_value() for s in settings.stripe_webhook_secrets]
    stripe = StripeVerifier(secrets) if secrets else None
    return apple, stripe, _google_play(settings)


def _stripe_api(settings: Settings) -> StripeInvoices | None:
    from ingress.stripe_webhook import StripeApi

    key = settings.stripe_api_key
    return None if key is None else StripeApi(key.get_secret_value(), settings.stripe_api_base)


def _google_play(settings: Settings) -> GooglePlay | None:
    """The Google Play endpoint's parts, when a package is configured."""
    from ingress.app import GooglePlay
    from ingress.google_play import GoogleCerts, GooglePlayClient, OidcAuth, SharedSecretAuth

    package = settings.google_play_package
    if package is None:
        return None
    if settings.google_push_secret is not None:
        auth: SharedSecretAuth | OidcAuth = SharedSecretAuth(
            settings.google_push_secret.get_secret_value()
        )
    elif settings.google_push_audience:
        auth = OidcAuth(
            settings.google_push_audience, settings.google_push_service_account, GoogleCerts()
        )
    else:
        typer.echo(
            "error: set SUBLEDGER_GOOGLE_PUSH_SECRET or SUBLEDGER_GOOGLE_PUSH_AUDIENCE", err=True
        )
        raise typer.Exit(code=2)
    if settings.google_play_api_endpoint is not None:
        from google.auth.credentials import AnonymousCredentials

        client = GooglePlayClient(AnonymousCredentials(), settings.google_play_api_endpoint)  # type: ignore[no-untyped-call]
        return GooglePlay(package, auth, client)
    if settings.google_service_account_file is None:
        typer.echo(
            "error: SUBLEDGER_GOOGLE_SERVICE_ACCOUNT_FILE is needed to fetch purchases", err=True
        )
        raise typer.Exit(code=2)
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(settings.google_service_account_file),
        scopes=["https://www.googleapis.com/auth/androidpublisher"],
    )
    return GooglePlay(package, auth, GooglePlayClient(credentials))
