"""`subledger topics apply`: creates the catalog's topics, refuses a broker that disagrees."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from runtime.broker import EmbeddedBroker
from runtime.catalog import Catalog, load_catalog
from runtime.topics import TopicMismatchError, apply_topics
from tests.integration.stack import ROOT

pytestmark = pytest.mark.integration


def fresh() -> Catalog:
    return load_catalog().with_prefix(f"t{uuid.uuid4().hex[:8]}.")


async def make(bootstrap: str, name: str, partitions: int, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def test_apply_creates_every_topic_once(broker: EmbeddedBroker) -> None:
    catalog = fresh()
    first = await apply_topics(catalog, broker.bootstrap)
    assert set(first.created) == {t.name for t in catalog.topics.values()}
    second = await apply_topics(catalog, broker.bootstrap)
    assert second.created == ()
    assert set(second.existing) == set(first.created)


async def test_apply_refuses_a_topic_with_other_partitions(broker: EmbeddedBroker) -> None:
    catalog = fresh()
    events = catalog["profile_events"]
    await make(broker.bootstrap, events.name, events.partitions + 1, {"cleanup.policy": "delete"})
    with pytest.raises(
        TopicMismatchError, match=f"{events.name}: {events.partitions + 1} partitions"
    ):
        await apply_topics(catalog, broker.bootstrap)


async def test_apply_refuses_a_topic_with_another_cleanup_policy(broker: EmbeddedBroker) -> None:
    catalog = fresh()
    snapshots = catalog["profile_snapshots"]
    await make(broker.bootstrap, snapshots.name, snapshots.partitions, {"cleanup.policy": "delete"})
    with pytest.raises(
        TopicMismatchError, match=r"cleanup\.policy delete, topics\.yaml says compact"
    ):
        await apply_topics(catalog, broker.bootstrap)


async def test_the_command_exits_non_zero_on_a_mismatch(broker: EmbeddedBroker) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    catalog = load_catalog().with_prefix(prefix)
    events = catalog["profile_events"]
    await make(broker.bootstrap, events.name, 1, {"cleanup.policy": "delete"})
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "topics", "apply", "--bootstrap", broker.bootstrap],
        cwd=ROOT,
        env={"SUBLEDGER_TOPIC_PREFIX": prefix, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "the broker disagrees with topics.yaml" in result.stderr
