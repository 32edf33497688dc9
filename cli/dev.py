"""`subledger dev`: the whole system on one machine, fed with sample traffic.

Starts (or uses) the broker and PostgreSQL, applies topics and migrations, runs the
worker, the projector and the HTTP service as child processes, publishes the sample
inputs, and prints where to look. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from aiokafka import AIOKafkaProducer

from cli.inputs import InputError, read_inputs
from cli.simulate import DEV_DIR, run_plan
from cli.stream import _apply, _bootstrap, _catalog, _database
from runtime.broker import free_port, wait_for_port
from runtime.catalog import Catalog
from runtime.settings import Settings
from schemas.base import to_json
from schemas.events import StoreEvent
from schemas.messages import Input

ROOT = Path(__file__).resolve().parents[1]
DEV_KEY = "dev-key"


async def publish(bootstrap: str, catalog: Catalog, inputs: list[Input]) -> None:
    """Inputs onto the topics they enter by: store events by chain, commands by profile."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for item in inputs:
            if isinstance(item, StoreEvent):
                topic, key = catalog["chain_inputs"].name, item.chain_key
            else:
                topic, key = catalog["profile_commands"].name, str(item.profile_id)
            await producer.send(topic, to_json(item), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _wait_for_profiles(base: str, key: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                f"{base}/api/v1/profiles",
                params={"limit": 200},
                headers={"Authorization": f"Api-Key {key}"},
            )
            seen = len(response.json().get("data", []))
        except (httpx.HTTPError, ValueError):
            seen = 0
        if seen >= expected:
            break
        time.sleep(0.5)
    return seen


def dev(
    port: Annotated[int, typer.Option(help="Port of the HTTP service.")] = 8080,
    profiles: Annotated[int, typer.Option(help="Profiles the simulator brings to life.")] = 40,
    rate: Annotated[float, typer.Option(help="Simulated requests per second.", min=0.1)] = 25.0,
    seed: Annotated[int, typer.Option(help="The simulator's seed.")] = 1,
    sample: Annotated[
        Path | None, typer.Option(help="Also feed these JSON lines of events and commands.")
    ] = None,
    keys: Annotated[Path, typer.Option(help="Development keys (made on first use).")] = DEV_DIR,
) -> None:
    """Run broker, PostgreSQL, worker, projector, dispatcher and API together, fed with
    simulated App Store, Google Play and Stripe traffic signed with development keys."""
    from simulator.keys import DevKeys
    from simulator.plan import plan
    from simulator.run import service_settings

    settings = Settings()
    catalog = _catalog(settings)
    api_keys = [k.get_secret_value() for k in settings.api_keys] or [DEV_KEY]
    try:
        inputs = read_inputs(sample.read_bytes().splitlines(), str(sample)) if sample else []
    except (OSError, InputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error
    # Absolute: the children run from the project's directory, wherever `dev` started.
    dev_keys = DevKeys.load_or_create(keys.resolve())
    play_port = free_port()
    # A SIGTERM while starting stops everything started so far, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    children: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        # The embedded broker starts empty, so the embedded database must too: read models
        # and stored offsets of an earlier run would name records this broker never held.
        url = _database(settings, stack, empty=settings.kafka_bootstrap is None)
        _apply(catalog, bootstrap)
        env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "SUBLEDGER_DATABASE_URL": url,
            "SUBLEDGER_API_KEYS": "[" + ",".join(f'"{k}"' for k in api_keys) + "]",
            # Development receivers listen on this machine.
            "SUBLEDGER_WEBHOOK_PRIVATE_ADDRESSES": "true",
        }
        if settings.kafka_bootstrap is None and settings.table_store is None:
            # Tables in memory, as the embedded broker keeps nothing across runs either.
            env["SUBLEDGER_TABLE_STORE"] = "memory"
        probes = {role: free_port() for role in ("worker", "project", "dispatch")}
        for role, probe in probes.items():
            children.append(
                _child(
                    [role, "--loglevel", "warning"], {**env, "SUBLEDGER_METRICS_PORT": str(probe)}
                )
            )
        store_settings = service_settings(dev_keys, f"http://127.0.0.1:{play_port}")
        children.append(_child(["api", "--port", str(port)], {**env, **store_settings}))
        try:
            wait_for_port(port, timeout=60)
            base = f"http://{settings.ingress_host}:{port}"
            if inputs:
                asyncio.run(publish(bootstrap, catalog, inputs))
            steps = plan(profiles, seed, datetime.now(UTC))
            typer.echo(
                f"simulating {profiles} profiles: {len(steps)} requests at {rate:g}/s", err=True
            )
            outcome = asyncio.run(run_plan(steps, base, dev_keys, api_keys[0], rate, play_port))
            for failure in outcome.failures:
                typer.echo(f"  refused: {failure}", err=True)
            expected = min(
                profiles + len({i.profile_id for i in inputs if not isinstance(i, StoreEvent)}), 200
            )
            shown = _wait_for_profiles(base, api_keys[0], expected, timeout=60)
            typer.echo(
                f"\nsubledger is running: {shown} profiles ({outcome.sent - outcome.refused:,} "
                f"requests accepted, {outcome.refused:,} refused)\n"
                f"  profiles   curl -H 'Authorization: Api-Key {api_keys[0]}' "
                f"{base}/api/v1/profiles\n"
                f"  console    {base}/console (sign in with the API key {api_keys[0]})\n"
                f"  API docs   {base}/docs\n"
                f"  metrics    {base}/metrics/ (API); /metrics, /health and /ready of\n"
                + "".join(
                    f"             {role:<9} http://127.0.0.1:{probe}/ready\n"
                    for role, probe in probes.items()
                )
                + f"  webhooks   {base}/webhooks/{{app-store,google-play,stripe}}\n"
                f"  more       {_command()} simulate --url {base} --seed 2 "
                f"--play-port {play_port}\n"
                f"  KAFKA_BOOTSTRAP={bootstrap}\n  DATABASE_URL={url}\n"
                "Ctrl-C stops everything.",
                err=True,
            )
            stop = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)
            signal.sigwait(stop)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
            typer.echo("stopped", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _command() -> str:
    """How to run `subledger` from the directory `dev` was started in."""
    found = shutil.which("subledger")
    if found is not None:
        return "subledger"
    beside = Path(sys.executable).parent / "subledger"
    return os.path.relpath(beside) if beside.exists() else f"{sys.executable} -m cli.main"


def _child(role: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own sessions: Ctrl-C reaches only `subledger dev`, which stops the children first
    # and the broker and database after them.
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *role], env=env, cwd=ROOT, start_new_session=True
    )
