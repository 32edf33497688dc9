"""The chaos harness, short: a few kill cycles under simulated traffic lose nothing
(`python -m bench.chaos` runs the long version; the README gives its figures)."""

from __future__ import annotations

import pytest

from bench import chaos

pytestmark = pytest.mark.integration


async def test_processes_killed_under_traffic_lose_nothing() -> None:
    assert await chaos.main(profiles=30, rate=25.0, cycles=4, seed=3) == 0
