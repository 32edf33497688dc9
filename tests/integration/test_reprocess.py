"""`subledger reprocess`: a new processor version derives its state and topics from the
source topics alone, beside the running one, to the same profiles."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from schemas.base import to_json
from schemas.enums import Store
from schemas.raw import RawNotification
from simulator.plan import plan
from tests.helpers import create
from tests.integration.stack import ROOT, Stack

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 30, tzinfo=UTC)
PROFILES = 8


async def publish_sources(stack: Stack) -> set[str]:
    """Commands and raw store notifications, as the API and ingress write them."""
    catalog = stack.catalog
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    profiles: set[str] = set()
    try:
        for step in plan(PROFILES, 11, START):
            if step.what == "create_profile":
                profile = step.body["profile_id"]
                profiles.add(profile)
                # Issued when the notifications are received: whichever the worker folds
                # first creates the profile at the same instant.
                command = create(UUID(profile), step.body["customer_user_id"], at=START)
                await producer.send(
                    catalog["profile_commands"].name,
                    to_json(command),
                    key=profile.encode(),
                )
            elif step.channel in ("app_store", "stripe"):
                store = Store.APP_STORE if step.channel == "app_store" else Store.STRIPE
                if store is Store.APP_STORE:
                    chain = step.body["data"]["transaction"]["originalTransactionId"]
                    dedupe = step.body["notificationUUID"]
                else:
                    obj = step.body["data"]["object"]
                    chain = obj.get("id") if obj["object"] == "subscription" else None
                    chain = chain or obj.get("parent", {}).get("subscription_details", {}).get(
                        "subscription"
                    )
                    dedupe = step.body["id"]
                    if chain is None:
                        continue
                raw = RawNotification(
                    store=store,
                    dedupe_key=dedupe,
                    received_at=START,
                    body="{}",
                    payload=step.body,
                )
                topic = "raw_app_store" if store is Store.APP_STORE else "raw_stripe"
                await producer.send(
                    catalog[topic].name,
                    raw.model_dump_json().encode(),
                    key=f"{store.value}:{chain}".encode(),
                )
        await producer.flush()
    finally:
        await producer.stop()
    return profiles


def reprocess(
    stack: Stack | None, *options: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`subledger reprocess` on the stack's topics (or on the settings alone)."""
    env = {**os.environ, **{f"SUBLEDGER_{k.upper()}": v for k, v in settings.items()}}
    if stack is not None:
        env |= {
            "SUBLEDGER_KAFKA_BOOTSTRAP": stack.bootstrap,
            "SUBLEDGER_TOPIC_PREFIX": stack.prefix,
            "SUBLEDGER_APP_ID": f"subledger-{stack.name}",
        }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "reprocess", *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def settled(stack: Stack, profiles: set[str]) -> dict[str, dict[str, Any]]:
    """The latest snapshots once every profile has one and two reads agree."""
    previous: dict[str, dict[str, Any]] | None = None
    while True:
        latest = await stack.snapshots(lambda found: set(found) == profiles, timeout=120)
        if latest == previous:
            return latest
        previous = latest
        await asyncio.sleep(2)


async def test_a_new_version_derives_the_same_profiles_from_the_sources(stack: Stack) -> None:
    profiles = await publish_sources(stack)
    stack.start_worker()
    current = await settled(stack, profiles)
    stack.stop_workers()

    dry = reprocess(stack, "--version", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{stack.prefix}profile.snapshots.v2" in dry.stderr
    assert f"{stack.prefix}profile.commands: {PROFILES:,} records" in dry.stderr
    assert f"{stack.prefix}profile.snapshots.v2" not in await topic_names(stack.bootstrap)

    done = reprocess(stack, "--version", "2")
    assert done.returncode == 0, done.stderr
    assert "caught up" in done.stderr
    v2 = dataclasses.replace(stack, version=2, workers=[], _logs=[])
    rebuilt = await settled(v2, profiles)
    assert rebuilt == current
    # Run again: nothing left to do, nothing changes.
    again = reprocess(stack, "--version", "2")
    assert again.returncode == 0, again.stderr
    assert await settled(v2, profiles) == current


def test_the_running_version_cannot_be_reprocessed_into() -> None:
    done = reprocess(None, "--version", "2", kafka_bootstrap="127.0.0.1:9", processor_version="2")
    assert done.returncode == 2
    assert "is the one configured" in done.stderr
