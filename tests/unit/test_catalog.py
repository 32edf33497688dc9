"""topics.yaml: every topic resolves, and no code spells a topic name."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.catalog import DEFAULT_PATH, CatalogError, load_catalog

ROOT = DEFAULT_PATH.parent
CODE = ("schemas", "processors", "projections", "runtime", "cli")


def test_every_topic_names_a_schema_that_exists() -> None:
    catalog = load_catalog()
    for topic in catalog.topics.values():
        assert topic.value_type is not None


def test_raw_store_topics_are_kept_forever_and_snapshots_compacted() -> None:
    catalog = load_catalog()
    for raw in ("raw_app_store", "raw_play_store", "raw_stripe"):
        assert catalog[raw].retention_ms == -1
    assert catalog["profile_snapshots"].cleanup_policy == "compact"


def test_no_code_spells_a_topic_name() -> None:
    names = [t.name for t in load_catalog().topics.values()]
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in CODE
        for path in (ROOT / folder).rglob("*.py")
        for name in names
        if f'"{name}"' in path.read_text() or f"'{name}'" in path.read_text()
    ]
    assert offenders == []


def test_an_unknown_topic_id_is_a_clear_error() -> None:
    with pytest.raises(CatalogError, match="no topic 'nope'"):
        load_catalog()["nope"]


def test_a_malformed_catalog_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("topics:\n  x:\n    name: 'has space'\n")
    with pytest.raises(CatalogError, match=r"topics\.yaml"):
        load_catalog(bad)


def test_prefix_isolates_every_name() -> None:
    prefixed = load_catalog().with_prefix("t1.")
    assert all(t.name.startswith("t1.") for t in prefixed.topics.values())
