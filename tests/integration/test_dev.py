"""`subledger dev`: the whole system from one command, fed with simulated store traffic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runtime.broker import free_port
from tests.integration.stack import ROOT

pytestmark = pytest.mark.integration


def test_dev_serves_simulated_profiles_of_every_store_and_stops_on_ctrl_c(
    tmp_path: Path, database: str
) -> None:
    port = free_port()
    log = tmp_path / "dev.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SUBLEDGER_") and k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL")
    }
    # The session's PostgreSQL (embedded, like dev's own) rather than a second server.
    env["DATABASE_URL"] = database
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "cli.main", "dev", "--port", str(port)),
                *("--profiles", "15", "--rate", "60", "--keys", str(tmp_path / "keys")),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while b"subledger is running" not in log.read_bytes():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/profiles",
                params={"sort": "ltv", "limit": 100},
                headers={"Authorization": "Api-Key dev-key"},
            )
            profiles = response.json()["data"]
            assert len(profiles) == 15
            assert {s for p in profiles for s in p["stores"]} == {
                "app_store",
                "play_store",
                "stripe",
            }
            assert ", 0 refused)" in log.read_text()
            assert float(profiles[0]["total_revenue_usd"]) > 0
            # Every store says where it billed (storefront, regionCode, the invoice's
            # customer address) and every app calls in: no profile lacks either.
            assert [p["profile_id"] for p in profiles if not p["last_seen_at"]] == []
            assert [p["profile_id"] for p in profiles if not p["store_country"]] == []
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                # SIGTERM: dev stops its children, broker and database before it exits.
                process.terminate()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
    assert "stopped" in log.read_text()
