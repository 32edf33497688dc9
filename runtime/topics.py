"""`subledger topics apply`: create the catalog's topics, refuse a broker that disagrees."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from runtime.catalog import Catalog, TopicSpec


class TopicMismatchError(Exception):
    """A topic exists with other partitions or cleanup policy than topics.yaml says."""


@dataclass(frozen=True)
class Applied:
    created: tuple[str, ...]
    existing: tuple[str, ...]


async def apply_topics(catalog: Catalog, bootstrap: str) -> Applied:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        wanted = list(catalog.topics.values())
        missing = [t for t in wanted if t.name not in present]
        if missing:
            await admin.create_topics([_new(t) for t in missing])
        existing = [t for t in wanted if t.name in present]
        await _check(admin, existing)
        return Applied(tuple(t.name for t in missing), tuple(t.name for t in existing))
    finally:
        await admin.close()


def _new(topic: TopicSpec) -> NewTopic:
    return NewTopic(
        topic.name, topic.partitions, topic.replication_factor, topic_configs=topic.configs
    )


async def _check(admin: AIOKafkaAdminClient, topics: list[TopicSpec]) -> None:
    if not topics:
        return
    problems: list[str] = []
    described = await admin.describe_topics([t.name for t in topics])
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t.name) for t in topics]
    )
    policies: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] == "cleanup.policy":
                    policies[resource[3]] = entry[1]
    for topic in topics:
        if partitions.get(topic.name) != topic.partitions:
            problems.append(
                f"{topic.name}: {partitions.get(topic.name)} partitions, topics.yaml says "
                f"{topic.partitions}"
            )
        policy = policies.get(topic.name, "delete")
        if policy != topic.cleanup_policy:
            problems.append(
                f"{topic.name}: cleanup.policy {policy}, topics.yaml says {topic.cleanup_policy}"
            )
    if problems:
        raise TopicMismatchError("; ".join(problems))
