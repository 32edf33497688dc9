"""A worker's tables on disk (RocksDB): a restart reads the changelog from where its disk
left off, a lost disk is rebuilt from the changelogs, a disk written against another log
is not trusted, and the memory store still gives the same profiles."""

from __future__ import annotations

import asyncio
import shutil
import signal

import httpx
import pytest
from aiokafka import TopicPartition

from runtime.broker import free_port
from runtime.kafka import end_offsets
from runtime.settings import BrokerFlavor
from tests.corpus import corpus
from tests.integration.stack import Stack
from tests.integration.test_stream import agrees_with, has_profiles, reference

pytestmark = pytest.mark.integration

STATE_TOPICS = ("chain_state", "profile_state", "identity_state")


async def _ready(port: int, timeout: float = 90.0) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(int(timeout * 4)):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"the worker on {port} never became ready")


async def _recovered(port: int) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    prefix = "subledger_table_records_recovered_total{"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


async def _changelog_records(stack: Stack) -> int:
    partitions = [
        TopicPartition(stack.catalog[topic].name, p)
        for topic in STATE_TOPICS
        for p in range(stack.catalog[topic].partitions)
    ]
    return sum((await end_offsets(stack.bootstrap, partitions, BrokerFlavor.TANSU)).values())


def _restart(stack: Stack, sig: int = signal.SIGKILL) -> int:
    stack.stop_workers(sig)
    port = free_port()
    stack.start_worker(metrics_port=str(port), table_store="rocksdb")
    return port


async def test_a_worker_reads_back_only_what_its_disk_lacks(stack: Stack) -> None:
    creates, rest = corpus(40)
    half = len(rest) // 2
    port = free_port()
    stack.start_worker(metrics_port=str(port), table_store="rocksdb")
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    await stack.publish(rest[:half])
    await stack.snapshots(agrees_with(reference(creates + rest[:half])))
    written = await _changelog_records(stack)
    assert written > 400
    assert list(stack.data_dir.rglob("profiles-*.db"))

    # Killed: the disk holds every acknowledged batch, so almost nothing is read back.
    port = _restart(stack)
    await _ready(port)
    assert await _recovered(port) < written / 10

    # Stopped cleanly, after more input: again only what the disk lacks.
    await stack.publish(rest[half:])
    await stack.snapshots(agrees_with(reference(creates + rest)))
    port = _restart(stack, signal.SIGTERM)
    await _ready(port)
    assert await _recovered(port) < written / 10

    # The disk lost: every changelog record is read back, and the profiles are the same.
    stack.stop_workers(signal.SIGKILL)
    shutil.rmtree(stack.data_dir)
    port = free_port()
    stack.start_worker(metrics_port=str(port), table_store="rocksdb")
    await _ready(port)
    assert await _recovered(port) == await _changelog_records(stack)
    # And it folds on: five more profiles.
    more_creates, more_rest = corpus(45)
    late = more_creates[len(creates) :] + more_rest[len(rest) :]
    await stack.publish(late)
    await stack.snapshots(agrees_with(reference(more_creates + more_rest)))


async def test_partitions_that_move_away_and_back_keep_their_state(stack: Stack) -> None:
    """A second worker takes half the partitions and is killed: the first takes them back
    with databases that stopped where it let go of them, and reads what the other wrote."""
    creates, rest = corpus(40)
    third = len(rest) // 3
    first = stack.start_worker(table_store="rocksdb", data_dir=str(stack.data_dir / "a"))
    await stack.publish(creates + rest[:third])
    await stack.snapshots(agrees_with(reference(creates + rest[:third])))
    port = free_port()
    second = stack.start_worker(
        table_store="rocksdb", data_dir=str(stack.data_dir / "b"), metrics_port=str(port)
    )
    await _ready(port)
    await stack.publish(rest[third : 2 * third])
    await stack.snapshots(agrees_with(reference(creates + rest[: 2 * third])), timeout=90)
    second.kill()
    second.wait()
    await stack.publish(rest[2 * third :])
    await stack.snapshots(agrees_with(reference(creates + rest)), timeout=120)
    assert first.poll() is None
    assert list((stack.data_dir / "b").rglob("profiles-*.db"))


async def test_tables_written_against_another_log_are_rebuilt(stack: Stack) -> None:
    """A disk that holds more of a changelog than the broker does (the broker lost its
    data, a topic was made again) is not trusted: its tables are rebuilt."""
    creates, rest = corpus(20)
    stack.start_worker(table_store="rocksdb")
    await stack.publish(creates + rest)
    await stack.snapshots(agrees_with(reference(creates + rest)))
    stack.stop_workers()
    # The same topics made again, empty: the disk now claims records they do not hold.
    again = Stack(stack.bootstrap, stack.logs, stack.database_url, name=stack.name + "x")
    await again.create_topics()
    copied = again.data_dir / f"{again.prefix}subledger-{again.name}"
    shutil.copytree(stack.data_dir / f"{stack.prefix}subledger-{stack.name}", copied)
    try:
        again.start_worker(table_store="rocksdb")
        # The same profiles created, nothing bought: the copied disk's purchases must not
        # show.
        await again.publish(creates)
        await again.snapshots(agrees_with(reference(creates)))
    finally:
        again.stop_workers()
    logs = "".join(p.read_text() for p in stack.logs.glob(f"worker-{again.name}-*.log"))
    assert "which the broker does not have: rebuilding it" in logs


async def test_the_memory_store_gives_the_same_profiles(stack: Stack) -> None:
    creates, rest = corpus(30)
    stack.start_worker(table_store="memory")
    await stack.publish(creates)
    await stack.snapshots(has_profiles(len(creates)))
    stack.stop_workers(signal.SIGKILL)
    stack.start_worker(table_store="memory")
    await stack.publish(rest)
    await stack.snapshots(agrees_with(reference(creates + rest)), timeout=90)
    assert not stack.data_dir.exists()
