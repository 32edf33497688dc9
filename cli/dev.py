"""`subledger dev`: the whole system on one machine, fed with sample traffic.

Starts (or uses) the broker and PostgreSQL, applies topics and migrations, runs the
worker, the projector and the HTTP service as child processes, publishes the sample
inputs, and prints where to look. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import httpx
import typer
from aiokafka import AIOKafkaProducer

from cli.inputs import InputError, read_inputs
from cli.stream import _apply, _bootstrap, _catalog, _database
from runtime.broker import free_port, wait_for_port
from runtime.catalog import Catalog
from runtime.settings import Settings
from schemas.events import StoreEvent
from schemas.messages import Input

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.jsonl"
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
            await producer.send(topic, item.model_dump_json().encode(), key=key.encode())
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
    sample: Annotated[
        Path, typer.Option(help="JSON lines of events and commands to feed.")
    ] = SAMPLE,
) -> None:
    """Run broker, PostgreSQL, worker, projector and API together, fed with sample traffic."""
    settings = Settings()
    catalog = _catalog(settings)
    keys = [k.get_secret_value() for k in settings.api_keys] or [DEV_KEY]
    try:
        inputs = read_inputs(sample.read_bytes().splitlines(), str(sample))
    except (OSError, InputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error
    children: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        bootstrap = _bootstrap(settings, stack)
        url = _database(settings, stack)
        _apply(catalog, bootstrap)
        env = {
            **os.environ,
            "SUBLEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "SUBLEDGER_DATABASE_URL": url,
            "SUBLEDGER_API_KEYS": "[" + ",".join(f'"{k}"' for k in keys) + "]",
        }
        probes = {role: free_port() for role in ("worker", "project", "dispatch")}
        for role, probe in probes.items():
            children.append(
                _child(
                    [role, "--loglevel", "warning"], {**env, "SUBLEDGER_METRICS_PORT": str(probe)}
                )
            )
        children.append(_child(["api", "--port", str(port)], env))
        try:
            wait_for_port(port, timeout=60)
            asyncio.run(publish(bootstrap, catalog, inputs))
            base = f"http://{settings.ingress_host}:{port}"
            profiles = {i.profile_id for i in inputs if not isinstance(i, StoreEvent)}
            shown = _wait_for_profiles(base, keys[0], len(profiles), timeout=60)
            typer.echo(
                f"\nsubledger is running: {shown} profiles from {sample.name}\n"
                f"  profiles   curl -H 'Authorization: Api-Key {keys[0]}' {base}/api/v1/profiles\n"
                f"  API docs   {base}/docs\n"
                f"  metrics    {base}/metrics (API); /metrics, /health and /ready of\n"
                + "".join(
                    f"             {role:<9} http://127.0.0.1:{probe}/ready\n"
                    for role, probe in probes.items()
                )
                + f"  webhooks   {base}/webhooks/{{app-store,google-play,stripe}}\n"
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


def _child(role: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own sessions: Ctrl-C reaches only `subledger dev`, which stops the children first
    # and the broker and database after them.
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *role], env=env, cwd=ROOT, start_new_session=True
    )
