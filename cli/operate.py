"""Operating commands: rebuild a read model from the topics."""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from typing import Annotated

import typer

from cli.inputs import parse_instant
from cli.stream import _catalog, _database
from runtime.settings import Settings


class ProgressLine:
    """One line on stderr: records done, rate and time left; redrawn in place on a
    terminal, a new line every few seconds otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.shown = 0.0

    def __call__(self, progress: object) -> None:
        from projections.rebuild import Progress

        assert isinstance(progress, Progress)
        now = time.monotonic()
        finished = progress.done >= progress.total
        if not finished and now - self.shown < (0.2 if self.tty else 5.0):
            return
        self.shown = now
        share = progress.done / progress.total if progress.total else 1.0
        eta = progress.eta
        left = "--:--" if eta is None else f"{int(eta // 60)}:{int(eta % 60):02d}"
        line = (
            f"{self.what}: {progress.done:,}/{progress.total:,} records ({share:.1%}), "
            f"{progress.rate:,.0f}/s, ETA {left}"
        )
        sys.stderr.write(("\r" + line + " " * 4) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


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
