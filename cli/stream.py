"""Commands that run subledger's processes: the embedded broker, topics, the worker."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.broker import BrokerError, EmbeddedBroker
from runtime.catalog import Catalog, CatalogError, load_catalog
from runtime.settings import Settings
from runtime.topics import TopicMismatchError, apply_topics

if TYPE_CHECKING:
    from ingress.app import GooglePlay

topics_app = typer.Typer(help="The topics of topics.yaml.", no_args_is_help=True)


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog().with_prefix(settings.topic_prefix)
    except CatalogError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error


def _apply(catalog: Catalog, bootstrap: str) -> None:
    try:
        applied = asyncio.run(apply_topics(catalog, bootstrap))
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
        bootstrap = settings.kafka_bootstrap
        if bootstrap is None:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
            typer.echo(f"embedded broker: KAFKA_BOOTSTRAP={bootstrap}", err=True)
        _apply(catalog, bootstrap)
        processor = Processor(settings, catalog, bootstrap)
        if settings.metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port, addr="127.0.0.1")
        logging.basicConfig(level=loglevel.upper(), stream=sys.stderr)
        # The Kafka client logs every request at DEBUG: never on the hot path.
        for noisy in ("aiokafka", "faust", "mode"):
            logging.getLogger(noisy).setLevel(
                max(logging.INFO, logging.getLevelName(loglevel.upper()))
            )
        Worker(processor.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def ingress(
    host: Annotated[
        str | None, typer.Option(help="Interface (default SUBLEDGER_INGRESS_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SUBLEDGER_INGRESS_PORT).")] = None,
) -> None:
    """Serve the store webhooks against KAFKA_BOOTSTRAP, or an embedded broker when unset."""
    import uvicorn

    from ingress.app import Ingress, create_app, running
    from ingress.apple import AppleVerifier
    from ingress.publisher import KafkaPublisher
    from ingress.stripe_webhook import StripeVerifier

    settings = Settings()
    catalog = _catalog(settings)
    apple = None
    if settings.apple_bundle_id:
        roots = [path.read_bytes() for path in settings.apple_root_certificates]
        apple = AppleVerifier(
            roots, settings.apple_environment, settings.apple_bundle_id, settings.apple_app_apple_id
        )
    google = _google_play(settings)
    secrets = [s.get_secret_value() for s in settings.stripe_webhook_secrets]
    stripe = StripeVerifier(secrets) if secrets else None
    with ExitStack() as stack:
        bootstrap = settings.kafka_bootstrap
        if bootstrap is None:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
            typer.echo(f"embedded broker: KAFKA_BOOTSTRAP={bootstrap}", err=True)
        _apply(catalog, bootstrap)
        publisher = KafkaPublisher(bootstrap, settings.broker_flavor)
        app = create_app(
            Ingress(catalog, publisher, apple, stripe, google),
            lifespan=lambda _: running(publisher),
        )
        uvicorn.run(
            app,
            host=host or settings.ingress_host,
            port=port or settings.ingress_port,
            log_level="warning",
            access_log=False,
        )


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
