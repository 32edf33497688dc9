"""Operating commands: rebuild a read model from the topics; reprocess the sources."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from typing import Annotated

import typer

from cli.inputs import parse_instant
from cli.status import StatusLine
from cli.stream import _apply, _catalog, _database
from runtime.broker import free_port
from runtime.catalog import Catalog
from runtime.kafka import end_offsets
from runtime.settings import Settings


class ProgressLine(StatusLine):
    """Records done, rate and time left."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def __call__(self, progress: object) -> None:
        from projections.rebuild import Progress

        assert isinstance(progress, Progress)
        share = progress.done / progress.total if progress.total else 1.0
        eta = progress.eta
        left = "--:--" if eta is None else f"{int(eta // 60)}:{int(eta % 60):02d}"
        line = (
            f"{self.what}: {progress.done:,}/{progress.total:,} records ({share:.1%}), "
            f"{progress.rate:,.0f}/s, ETA {left}"
        )
        self.show(line, finished=progress.done >= progress.total)


def replay(
    projection: Annotated[str, typer.Option(help="The read model to rebuild.")] = "read_models",
    from_beginning: Annotated[
        bool,
        typer.Option("--from-beginning", help="Rebuild from the first record (the default)."),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="Rewrite a copy of the live model with every record since this ISO instant."
        ),
    ] = None,
) -> None:
    """Rebuild a read model from the topics in a shadow schema, then swap it in.

    The live model keeps serving until the swap; no webhook is sent. Safe to interrupt
    and run again: it resumes where it stopped.
    """
    from projections.rebuild import Rebuild, RebuildError

    if from_beginning and since is not None:
        typer.echo("error: give --from-beginning or --since, not both", err=True)
        raise typer.Exit(code=2)
    at: datetime | None = parse_instant(since) if since is not None else None
    settings = Settings()
    catalog = _catalog(settings)
    line = ProgressLine(f"rebuilding {projection}")
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        typer.echo(
            "error: a replay reads the topics of a running broker: set KAFKA_BOOTSTRAP "
            "(`subledger dev` prints it)",
            err=True,
        )
        raise typer.Exit(code=2)
    with ExitStack() as stack:
        url = _database(settings, stack)
        try:
            rebuild = Rebuild(
                catalog,
                bootstrap,
                url,
                projection=projection,
                since=at,
                batch_size=settings.projection_batch_size,
                flavor=settings.broker_flavor,
                report=line,
            )
            progress = asyncio.run(rebuild.run())
        except RebuildError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from error
        finally:
            line.close()
    typer.echo(
        f"{projection} rebuilt from {progress.done:,} records ({progress.written:,} rows) "
        "and swapped in",
        err=True,
    )


def reprocess(
    version: Annotated[
        int, typer.Option("--version", help="The new processor version (2, 3, ...).", min=2)
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would happen; change nothing.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to catch up.")] = 3600,
) -> None:
    """Rebuild processor state from the source topics under a new processor version.

    A worker of the new version (its own consumer group, state and derived topics, named
    `<topic>.v<version>`) reads the store notifications and commands from the first
    offset until it has caught up, beside the running version, which it leaves alone.
    Safe to interrupt and run again: it resumes from its committed offsets.
    """
    settings = Settings()
    if version == settings.processor_version:
        typer.echo(f"error: version {version} is the one configured; name a new one", err=True)
        raise typer.Exit(code=2)
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        typer.echo("error: set KAFKA_BOOTSTRAP to the broker holding the topics", err=True)
        raise typer.Exit(code=2)
    new = settings.model_copy(update={"processor_version": version})
    catalog = _catalog(new)
    sources = catalog.sources
    counts = asyncio.run(_source_counts(bootstrap, catalog, settings))
    typer.echo(
        f"reprocess into processor version {version} (consumer group {new.processor_app_id}):\n"
        + "".join(f"  read   {t.name}: {counts[t.name]:,} records\n" for t in sources)
        + "".join(f"  write  {t.name}\n" for t in catalog.topics.values() if not t.source)
        + "then, to cut over: workers with SUBLEDGER_PROCESSOR_VERSION="
        f"{version}; stop the projectors; `SUBLEDGER_PROCESSOR_VERSION={version} subledger "
        "replay --from-beginning`; start the projectors with that version.",
        err=True,
    )
    if dry_run:
        return
    _apply(catalog, bootstrap)
    probe = free_port()
    env = {
        **os.environ,
        "SUBLEDGER_KAFKA_BOOTSTRAP": bootstrap,
        "SUBLEDGER_PROCESSOR_VERSION": str(version),
        "SUBLEDGER_METRICS_PORT": str(probe),
        "SUBLEDGER_READY_LAG": "0",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--loglevel", "warning"],
        env=env,
        start_new_session=True,
    )
    try:
        _wait_caught_up(f"http://127.0.0.1:{probe}", worker, timeout)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: run it again to resume", err=True)
        raise typer.Exit(code=130) from None
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    typer.echo(f"processor version {version} has caught up with the source topics", err=True)


async def _source_counts(bootstrap: str, catalog: Catalog, settings: Settings) -> dict[str, int]:
    from aiokafka import TopicPartition

    partitions = [TopicPartition(t.name, p) for t in catalog.sources for p in range(t.partitions)]
    ends = await end_offsets(bootstrap, partitions, settings.broker_flavor)
    counts: dict[str, int] = {t.name: 0 for t in catalog.sources}
    for tp, offset in ends.items():
        counts[tp.topic] += offset
    return counts


def _wait_caught_up(base: str, worker: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the worker reports no record left to read, twice a second apart."""
    import httpx

    deadline = time.monotonic() + timeout
    settled = 0
    shown = 0.0
    while settled < 2:
        if worker.poll() is not None:
            typer.echo(f"error: the worker stopped (exit {worker.returncode})", err=True)
            raise typer.Exit(code=1)
        if time.monotonic() > deadline:
            typer.echo("error: not caught up in time; run it again to go on", err=True)
            raise typer.Exit(code=1)
        time.sleep(1.0)
        try:
            ready = httpx.get(f"{base}/ready", timeout=2)
        except httpx.HTTPError:
            continue
        settled = settled + 1 if ready.status_code == 200 else 0
        if ready.status_code != 200 and time.monotonic() - shown > 5:
            shown = time.monotonic()
            typer.echo(f"  {ready.json().get('reason', 'starting')}", err=True)
