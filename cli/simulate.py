"""`subledger simulate`: realistic store traffic for a running subledger."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from cli.inputs import parse_instant
from cli.status import StatusLine

if TYPE_CHECKING:
    from simulator.keys import DevKeys
    from simulator.plan import Step
    from simulator.run import Outcome

DEV_DIR = Path(".subledger/dev")


class Meter(StatusLine):
    """Requests sent, refused, and the rate."""

    def __init__(self) -> None:
        super().__init__(every=0.5)
        self.started = time.monotonic()

    def __call__(self, outcome: Outcome, total: int) -> None:
        rate = outcome.sent / max(time.monotonic() - self.started, 1e-9)
        line = (
            f"simulated {outcome.sent:,}/{total:,} requests, {outcome.refused:,} refused, "
            f"{rate:,.0f}/s"
        )
        self.show(line, finished=outcome.sent >= total)


def simulate(
    profiles: Annotated[int, typer.Option(help="Profiles to simulate.", min=1)] = 100,
    rate: Annotated[float, typer.Option(help="Requests per second.", min=0.1)] = 50.0,
    seed: Annotated[int, typer.Option(help="The same seed plans the same traffic.")] = 1,
    url: Annotated[str, typer.Option(help="The subledger HTTP service.")] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str, typer.Option(help="A server-side API key of that service.")
    ] = "dev-key",
    keys: Annotated[Path, typer.Option(help="Development keys (made on first use).")] = DEV_DIR,
    play_port: Annotated[
        int, typer.Option(help="Loopback port of the store API stand-ins (Play, Stripe).")
    ] = 8099,
    start: Annotated[
        str | None, typer.Option(help="The plan's present (ISO instant); default now.")
    ] = None,
    plan_only: Annotated[
        bool, typer.Option("--plan-only", help="Print the plan as JSON lines; send nothing.")
    ] = False,
    print_settings: Annotated[
        bool,
        typer.Option(
            "--print-settings", help="Print the settings the service needs to accept the traffic."
        ),
    ] = False,
) -> None:
    """Send realistic App Store, Google Play and Stripe notifications and server-side API
    calls, signed with development keys: trials, renewals, cancellations, billing issues,
    refunds, product changes, pauses, restores, one-time purchases, email engagement, with
    duplicates, reordering and renewals dated ahead. Deterministic under --seed."""
    from simulator.keys import DevKeys
    from simulator.plan import plan
    from simulator.run import service_settings

    dev_keys = DevKeys.load_or_create(keys)
    if print_settings:
        for name, value in service_settings(dev_keys, f"http://127.0.0.1:{play_port}").items():
            typer.echo(f"{name}='{value}'")
        return
    present = parse_instant(start) if start is not None else datetime.now(UTC)
    steps = plan(profiles, seed, present)
    if plan_only:
        for step in steps:
            sys.stdout.buffer.write(orjson.dumps(asdict(step)) + b"\n")
        return
    outcome = asyncio.run(run_plan(steps, url, dev_keys, api_key, rate, play_port))
    for failure in outcome.failures:
        typer.echo(f"  refused: {failure}", err=True)
    if outcome.refused:
        raise typer.Exit(code=1)


async def run_plan(
    steps: list[Step], url: str, keys: DevKeys, api_key: str, rate: float, play_port: int
) -> Outcome:
    """The store API stand-ins serving while the steps go out."""
    from simulator.run import Simulator, StoreApis

    play = StoreApis()
    meter = Meter()
    try:
        async with play.serving(play_port):
            return await Simulator(url, keys, api_key, play, rate=rate).run(steps, meter)
    finally:
        meter.close()
