"""The stream processor on the real (embedded) broker agrees with the in-memory ledger."""

from __future__ import annotations

import asyncio
import random
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator

from processors.core.ledger import Ledger
from runtime.broker import free_port
from schemas.base import to_builtins, to_json
from schemas.commands import CreateProfile
from schemas.integration import SCHEMA_FILE
from schemas.messages import Input
from tests.builders import Chain
from tests.corpus import corpus
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

FAR = datetime(2030, 1, 1, tzinfo=UTC)
IGNORED = {"version", "as_of"}


def reference(inputs: list[Input]) -> dict[str, dict[str, Any]]:
    """What every profile must show once the stream has folded the inputs."""
    ledger = Ledger()
    ledger.submit_all(inputs)
    ledger.advance(FAR)
    return {str(v.profile_id): _comparable(to_builtins(v)) for v in ledger.views(FAR)}


def _comparable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in IGNORED}


def agrees_with(expected: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
    def done(latest: dict[str, dict[str, Any]]) -> bool:
        return {p: _comparable(v) for p, v in latest.items()} == expected

    return done


def has_profiles(count: int):  # type: ignore[no-untyped-def]
    return lambda latest: len(latest) >= count


async def test_inputs_on_the_topics_produce_the_reference_snapshots(stack: Stack) -> None:
    creates, rest = corpus(25)
    expected = reference(creates + rest)
    metrics_port = free_port()
    stack.start_worker(metrics_port=str(metrics_port))
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    await stack.publish(rest)
    await stack.snapshots(agrees_with(expected))
    events = await stack.read("profile_events", lambda records: len(records) > 0)
    assert {e["profile_id"] for e in events} <= set(expected)
    # Integration events: the shipped schema holds; every purchase the reference reports
    # is reported with the same id. The worker's timers may also report an end the
    # reference never saw: a trial that expired before its late conversion arrived.
    validator = Draft202012Validator(orjson.loads(SCHEMA_FILE.read_bytes()))
    assert all(validator.is_valid(e) for e in events)
    ledger = Ledger()
    ledger.submit_all(creates + rest)
    purchases = {
        "subscription_started",
        "subscription_renewed",
        "trial_started",
        "trial_converted",
        "subscription_refunded",
        "non_subscription_purchase",
    }
    reported = {e["profile_event_id"] for e in events}
    expected_purchases = {
        str(e.profile_event_id) for e in ledger.published if e.event_type.value in purchases
    }
    assert expected_purchases
    assert expected_purchases <= reported
    ledger.advance(FAR)
    known = {str(e.profile_event_id) for e in ledger.published}
    timed = {"trial_expired", "subscription_expired", "access_level_updated"}
    assert {e["event_type"] for e in events if e["profile_event_id"] not in known} <= timed
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert "subledger_events_in_total" in metrics
    assert "subledger_commit_age_seconds" in metrics


async def test_duplicated_and_shuffled_input_gives_the_same_snapshots(stack: Stack) -> None:
    creates, rest = corpus(20)
    expected = reference(creates + rest)
    noisy = rest + random.Random(7).sample(rest, len(rest) // 2)
    random.Random(11).shuffle(noisy)
    stack.start_worker()
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    await stack.publish(noisy)
    await stack.snapshots(agrees_with(expected))


async def test_a_killed_worker_recovers_state_without_loss_or_double_count(stack: Stack) -> None:
    creates, rest = corpus(30)
    expected = reference(creates + rest)
    half = len(rest) // 2
    stack.start_worker()
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    await stack.publish(rest[:half])
    partial = reference(creates + rest[:half])
    await stack.snapshots(agrees_with(partial))
    stack.stop_workers(signal.SIGKILL)
    await stack.publish(rest[half:])
    stack.start_worker()
    await stack.snapshots(agrees_with(expected), timeout=90)


async def test_a_worker_killed_again_and_again_mid_stream_loses_nothing(stack: Stack) -> None:
    """SIGKILL at any instant, input still arriving: every input is folded exactly once.

    Each kill leaves records read but not folded at the committed offsets of some
    partitions, and the rebalance of the next start drops what was fetched meanwhile;
    nothing may be committed past them (processors/stream/commits.py)."""
    creates, rest = corpus(60)
    expected = reference(creates + rest)
    stack.start_worker()
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    rng = random.Random(5)
    chunks = [rest[i : i + 25] for i in range(0, len(rest), 25)]
    for index, chunk in enumerate(chunks):
        await stack.publish(chunk)
        if index % 2 == 1:
            # Killed while it joins, recovers, folds or commits.
            await asyncio.sleep(rng.uniform(0.5, 4.0))
            stack.stop_workers(signal.SIGKILL)
            stack.start_worker()
    await stack.snapshots(agrees_with(expected), timeout=120)


async def test_two_workers_split_the_partitions_and_agree_with_one(stack: Stack) -> None:
    creates, rest = corpus(30)
    expected = reference(creates + rest)
    ports = [free_port(), free_port()]
    for index, port in enumerate(ports):
        # Two workers on one machine: a data directory each, as two machines would have.
        stack.start_worker(metrics_port=str(port), data_dir=str(stack.data_dir / str(index)))
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)), timeout=90)
    await stack.publish(rest)
    await stack.snapshots(agrees_with(expected), timeout=90)
    assert all(w.poll() is None for w in stack.workers)
    consumed = [await _consumed(port, stack.catalog["chain_inputs"].name) for port in ports]
    assert all(count > 0 for count in consumed), consumed  # both held partitions


async def _consumed(port: int, topic: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    prefix = f'subledger_events_in_total{{topic="{topic}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_time_passes_without_input(stack: Stack) -> None:
    """A future-dated renewal counts once due; an expiry and a grace end happen on time."""
    now = datetime.now(UTC).replace(microsecond=0)
    due = now + timedelta(seconds=12)
    ahead, lapsing, grace = (
        Chain(otid=f"{name}-{stack.name}", profile=_pid(i))
        for i, name in enumerate(("ahead", "lapsing", "grace"))
    )
    month = timedelta(days=30)
    inputs: list[Input] = [
        *(
            CreateProfile(command_id=f"c{i}", issued_at=now - 2 * month, profile_id=_pid(i))
            for i in range(3)
        ),
        ahead.buy("h1", now - month, due, received=now - month),
        ahead.buy("h2", due, due + month, received=now),  # sent ahead of time
        lapsing.buy("l1", now - month, due, received=now - month),
        lapsing.auto_renew(False, now - timedelta(days=1)),
        grace.buy("g1", now - month, now - timedelta(days=1), received=now - month),
        grace.billing_issue(now - timedelta(days=1), grace_until=due),
    ]
    stack.start_worker()
    await stack.publish(inputs)
    history = await stack.read(
        "profile_snapshots",
        lambda records: (
            {r["profile_id"] for r in records if r["as_of"] >= _iso(due)}
            == {str(_pid(i)) for i in range(3)}
        ),
        timeout=40,
    )
    before = {r["profile_id"]: r for r in history if r["as_of"] < _iso(due)}
    after = {r["profile_id"]: r for r in history if r["as_of"] >= _iso(due)}
    assert (_revenue(before, 0), _revenue(after, 0)) == ("9.99", "19.98")
    assert (_state(before, 0), _state(after, 0)) == ("subscribed", "subscribed")
    assert (_state(before, 1), _state(after, 1)) == ("auto_renew_off", "subscription_cancelled")
    assert (_state(before, 2), _state(after, 2)) == ("grace_period", "billing_issue")
    # Woken at the instant itself, not at the next input.
    assert {after[str(_pid(i))]["as_of"] for i in range(3)} == {_iso(due)}


def _pid(i: int) -> Any:
    from uuid import UUID

    return UUID(int=0x71AE << 112 | i)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _revenue(snapshots: dict[str, dict[str, Any]], i: int) -> str:
    return str(snapshots[str(_pid(i))]["revenue"]["total_revenue_usd"])


def _state(snapshots: dict[str, dict[str, Any]], i: int) -> str:
    return str(snapshots[str(_pid(i))]["subscription_state"])


async def test_bad_input_is_dead_lettered_and_the_stream_moves_on(stack: Stack) -> None:
    from aiokafka import AIOKafkaProducer

    from schemas.commands import GrantAccessLevel

    profile = _pid(100)
    stack.start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.catalog["chain_inputs"].name, b"{not json", key=b"app_store:x"
        )
        await producer.send_and_wait(
            stack.catalog["profile_commands"].name,
            b'{"kind": "grant_access_level"}',
            key=str(profile).encode(),
        )
    finally:
        await producer.stop()
    now = datetime.now(UTC)
    await stack.publish(
        [
            CreateProfile(command_id="c", issued_at=now, profile_id=profile),
            GrantAccessLevel(
                command_id="g", issued_at=now, profile_id=profile, access_level_id="gold"
            ),
        ]
    )
    letters = await stack.read("dead_letters", lambda records: len(records) >= 2)
    assert {letter["source_topic"] for letter in letters} == {
        stack.catalog["chain_inputs"].name,
        stack.catalog["profile_commands"].name,
    }
    assert all(letter["reason"].startswith("invalid") for letter in letters)
    outcomes = await stack.read("profile_outcomes", lambda records: len(records) >= 2)
    by_command = {outcome["command_id"]: outcome for outcome in outcomes}
    assert by_command["c"]["kind"] == "applied"
    assert (by_command["g"]["kind"], by_command["g"]["error_code"]) == (
        "rejection",
        "paid_access_level_does_not_exist",
    )
    snapshots = await stack.snapshots(lambda latest: str(profile) in latest)
    assert snapshots[str(profile)]["access_levels"] == []
    assert str(_pid(101)) not in snapshots  # the mis-keyed command changed nothing


async def test_a_pack_is_folded_message_by_message(stack: Stack) -> None:
    """A bad message in a pack is dead-lettered alone, as is one packed for another
    partition; the rest of the pack is folded."""
    from aiokafka import AIOKafkaProducer

    from processors.stream.sender import Partitioner

    topic = stack.catalog["profile_inputs"]
    partition_of = Partitioner()
    home = _pid(200)
    partition = partition_of(str(home).encode(), topic.partitions)
    stray = next(
        _pid(i)
        for i in range(201, 300)
        if partition_of(str(_pid(i)).encode(), topic.partitions) != partition
    )
    now = datetime.now(UTC)
    pack = (
        b"["
        + b",".join(
            [
                to_json(CreateProfile(command_id="p1", issued_at=now, profile_id=home)),
                b'{"kind": "tick"}',
                to_json(CreateProfile(command_id="p2", issued_at=now, profile_id=stray)),
            ]
        )
        + b"]"
    )
    stack.start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic.name, pack, partition=partition)
    finally:
        await producer.stop()
    letters = await stack.read("dead_letters", lambda records: len(records) >= 2)
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0].startswith("message 1 of the pack is invalid")
    assert reasons[1].startswith(f"packed for partition {partition}, but {stray}")
    assert all(letter["source_topic"] == topic.name for letter in letters)
    snapshots = await stack.snapshots(lambda latest: str(home) in latest)
    assert str(stray) not in snapshots
