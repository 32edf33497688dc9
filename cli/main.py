"""`subledger`: operate and inspect the ledger from a shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from cli import dead_letters, dev, operate, simulate, stream
from cli.inputs import InputError, parse_instant, read_inputs
from processors.core.ledger import Ledger
from schemas.base import to_builtins
from schemas.messages import instant_of

app = typer.Typer(
    name="subledger",
    help="Subscription-state engine: store notifications in, customer profiles out.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Subscription-state engine: store notifications in, customer profiles out."""


app.add_typer(stream.topics_app, name="topics")
app.add_typer(dead_letters.dead_letters_app, name="dead-letters")
app.command()(stream.broker)
app.command()(stream.worker)
app.command()(stream.api)
app.command("ingress", hidden=True)(stream.api)
app.command()(stream.project)
app.command()(stream.dispatch)
app.command()(stream.migrate)
app.command()(stream.postgres)
app.command("dev")(dev.dev)
app.command()(operate.replay)
app.command()(operate.reprocess)
app.command()(simulate.simulate)


@app.command()
def fold(
    file: Annotated[
        Path, typer.Argument(help="JSON lines of canonical events and commands; '-' reads stdin.")
    ],
    now: Annotated[
        str | None,
        typer.Option(help="Evaluate the profiles at this instant (default: the last input's)."),
    ] = None,
    events: Annotated[
        bool, typer.Option("--events", help="Also print the emitted events and rejections.")
    ] = False,
) -> None:
    """Fold events and commands, in file order, into profiles and print them as JSON."""
    at = parse_instant(now) if now is not None else None
    data = sys.stdin.buffer.read() if str(file) == "-" else _read(file)
    try:
        items = read_inputs(data.splitlines(), str(file))
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error
    ledger = Ledger()
    ledger.submit_all(items)
    if at is None:
        at = max((instant_of(i) for i in items), default=None)
    if at is None:
        typer.echo(f"error: {file} holds no input and --now was not given", err=True)
        raise typer.Exit(code=2)
    ledger.advance(at)
    out: dict[str, Any] = {
        "now": to_builtins(at),
        "profiles": [to_builtins(v) for v in ledger.views(at)],
    }
    if events:
        out["events"] = [to_builtins(e) for e in ledger.events]
        out["rejections"] = [to_builtins(r) for r in ledger.rejections]
    sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")


@app.command()
def schema() -> None:
    """Write the JSON Schema of integration events (schemas/integration_event.json)."""
    from schemas.integration import SCHEMA_FILE, json_schema

    SCHEMA_FILE.write_bytes(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2) + b"\n")
    typer.echo(f"wrote {SCHEMA_FILE}", err=True)


@app.command()
def openapi() -> None:
    """Write the HTTP API's OpenAPI document (docs/openapi.json), as the service serves it."""
    from api.app import SPEC_FILE, openapi_document

    SPEC_FILE.write_bytes(
        orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    typer.echo(f"wrote {SPEC_FILE}", err=True)


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        typer.echo(f"error: cannot read {file}: {error.strerror}", err=True)
        raise typer.Exit(code=2) from error


if __name__ == "__main__":
    app()
