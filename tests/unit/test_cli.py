"""`subledger fold`: JSON lines in, profiles out; bad input is a clear error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from cli.main import app
from schemas.base import to_json
from tests.builders import ALICE, Chain, day
from tests.helpers import create

runner = CliRunner()


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fold_prints_profiles_at_the_given_instant(tmp_path: Path) -> None:
    chain = Chain()
    lines = [
        to_json(create(ALICE, "alice")).decode(),
        to_json(chain.buy("t1", day(0), day(30))).decode(),
        to_json(chain.auto_renew(False, day(3))).decode(),
    ]
    result = runner.invoke(app, ["fold", str(write(tmp_path, lines)), "--now", day(40).isoformat()])
    assert result.exit_code == 0, result.output
    (profile,) = orjson.loads(result.stdout)["profiles"]
    assert profile["customer_user_id"] == "alice"
    assert profile["subscription_state"] == "subscription_cancelled"
    assert profile["revenue"]["total_revenue_usd"] == "9.99"


def test_fold_with_events_lists_what_was_emitted(tmp_path: Path) -> None:
    lines = [
        to_json(create(ALICE)).decode(),
        to_json(Chain().buy("t1", day(0), day(30))).decode(),
    ]
    result = runner.invoke(app, ["fold", str(write(tmp_path, lines)), "--events"])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert out["now"] == "2026-04-01T00:00:00Z"
    assert [e["event_type"] for e in out["events"]] == [
        "profile_created",
        "subscription_started",
        "access_level_updated",
    ]


def test_fold_names_the_line_and_field_of_bad_input(tmp_path: Path) -> None:
    good = to_json(create(ALICE)).decode()
    bad = orjson.dumps(
        {
            "kind": "grant_access_level",
            "command_id": "g",
            "profile_id": str(ALICE),
            "issued_at": "2026-04-01T00:00:00Z",
            "access_level_id": "",
        }
    ).decode()
    result = runner.invoke(app, ["fold", str(write(tmp_path, [good, bad]))])
    assert result.exit_code == 2
    assert "input.jsonl:2: grant_access_level.access_level_id" in result.stderr


def test_fold_rejects_a_naive_instant(tmp_path: Path) -> None:
    path = write(tmp_path, [to_json(create(ALICE)).decode()])
    result = runner.invoke(app, ["fold", str(path), "--now", "2026-04-01T00:00:00"])
    assert result.exit_code == 2


def test_fold_reports_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fold", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_replay_without_a_broker_says_where_the_topics_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUBLEDGER_KAFKA_BOOTSTRAP", raising=False)
    result = runner.invoke(app, ["replay", "--projection", "read_models"])
    assert result.exit_code == 2
    assert "KAFKA_BOOTSTRAP" in result.stderr


def test_replay_takes_one_starting_point() -> None:
    result = runner.invoke(app, ["replay", "--from-beginning", "--since", "2026-04-01T00:00:00Z"])
    assert result.exit_code == 2
    assert "not both" in result.stderr
