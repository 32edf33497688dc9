"""The topic catalog: `topics.yaml`, the one place a topic is named."""

from __future__ import annotations

import importlib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "topics.yaml"


class CatalogError(Exception):
    """topics.yaml is missing, malformed, or names a schema that does not exist."""


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    key: str
    value: str
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int = Field(ge=-1)
    # Accepted input (store notifications, commands): kept for good, the same for every
    # processor version. Every other topic is derived from these by the processors, and
    # a new processor version (`subledger reprocess`) derives its own.
    source: bool = False

    @cached_property
    def value_type(self) -> Any:
        """The contract of this topic's values (a model or union under schemas/)."""
        module, _, attribute = self.value.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise CatalogError(f"topic {self.id}: no schema {self.value}") from error

    @property
    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    topics: dict[str, TopicSpec]

    def __getitem__(self, topic_id: str) -> TopicSpec:
        try:
            return self.topics[topic_id]
        except KeyError:
            raise CatalogError(f"topics.yaml has no topic {topic_id!r}") from None

    def with_prefix(self, prefix: str) -> Catalog:
        """The same catalog with every name prefixed: isolated topics for a test or a run."""
        return Catalog(
            topics={
                i: t.model_copy(update={"name": f"{prefix}{t.name}"})
                for i, t in self.topics.items()
            }
        )

    def with_version(self, version: int) -> Catalog:
        """The topics of processor version `version`: sources as they are, each derived
        topic suffixed `.v<version>` from version 2 on (version 1 keeps the plain names)."""
        if version == 1:
            return self
        return Catalog(
            topics={
                i: t if t.source else t.model_copy(update={"name": f"{t.name}.v{version}"})
                for i, t in self.topics.items()
            }
        )

    @property
    def sources(self) -> list[TopicSpec]:
        return [t for t in self.topics.values() if t.source]


def load_catalog(path: Path = DEFAULT_PATH) -> Catalog:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CatalogError(f"cannot read {path}: {error}") from error
    defaults = document.get("defaults", {})
    try:
        topics = {
            topic_id: TopicSpec(id=topic_id, **{**defaults, **spec})
            for topic_id, spec in document["topics"].items()
        }
    except (KeyError, TypeError, ValidationError) as error:
        raise CatalogError(f"{path}: {error}") from error
    names = [t.name for t in topics.values()]
    if len(set(names)) != len(names):
        raise CatalogError(f"{path}: a topic name is used twice")
    return Catalog(topics=topics)
