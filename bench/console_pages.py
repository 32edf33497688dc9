"""Console page times with a large read model, beside the JSON API they are built on.

    python -m bench.console_pages [--profiles 100000] [--requests 200]

Fills a fresh read model with `--profiles` profiles cloned from the scenario corpus
(snapshots and journeys of real shape, through the projector's writer), signs in to the
console and times, server side and in process (no network: the app is called through
ASGI), the profiles page (first page, a filter, a search, the second page, sorted by
LTV) and profile pages of random profiles; and, in the same run, the JSON API calls each
page makes, as the baseline. Prints p50, p95 and max in milliseconds.

Uses DATABASE_URL when set (a fresh database is made on that server), else an embedded
PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

from api.app import create_api, database_engine
from bench.projection_throughput import clones, copy_upsert, fresh
from ingress.app import Ingress
from runtime.catalog import load_catalog
from runtime.postgres import embedded_postgres
from runtime.settings import Settings

KEY = "bench_console"


class Unpublished:
    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        raise AssertionError(f"reading pages published to {topic}")

    async def unavailable(self) -> str | None:
        return None


async def timed(
    name: str, requests: int, call: Callable[[int], Awaitable[httpx.Response]]
) -> list[float]:
    times = []
    for i in range(requests):
        started = time.perf_counter()
        response = await call(i)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"  {name:<34} p50 {statistics.median(times):6.1f}  p95 {p95:6.1f}  max {times[-1]:6.1f} ms"
    )
    return times


async def main(profiles: int, requests: int) -> None:
    with ExitStack() as stack:
        server = os.environ.get("DATABASE_URL") or stack.enter_context(
            embedded_postgres(Path(tempfile.mkdtemp()) / "pg", delete=True)
        )
        url = await fresh(server, "bench_console")
        items = [(topic, orjson.dumps(record)) for topic, record in clones(profiles)]
        started = time.perf_counter()
        rows, _ = await copy_upsert(url, items, 2000)
        print(
            f"read model: {profiles:,} profiles, {rows:,} rows "
            f"({time.perf_counter() - started:.0f} s to fill)"
        )
        settings = Settings(api_keys=(KEY,), database_url=url)
        engine = database_engine(url)
        app = create_api(Ingress(load_catalog(), Unpublished()), engine, settings)
        transport = httpx.ASGITransport(app=app)
        auth = {"authorization": f"Api-Key {KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            form = await http.get("/console/sign-in")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            signed = await http.post(
                "/console/sign-in", data={"csrf": token.group(1), "api_key": KEY, "next": ""}
            )
            assert signed.status_code in (200, 303), signed.text[:300]
            first = (await http.get("/api/v1/profiles", headers=auth)).json()
            cursor = first["next_cursor"]
            ids = [str(uuid.UUID(int=n + 1)) for n in range(profiles)]
            pick = random.Random(7)
            print(f"{requests} requests each (server side, in process):")
            print(" console")
            pages = {
                "profiles, first page": "/console/profiles",
                "profiles, state filter": "/console/profiles?subscription_state=subscribed",
                "profiles, second page": f"/console/profiles?cursor={cursor}",
                "profiles, sorted by LTV": "/console/profiles?sort=ltv&order=desc",
            }
            for name, path in pages.items():
                await timed(name, requests, lambda i, p=path: http.get(p))  # type: ignore[misc]

            async def search(i: int) -> httpx.Response:
                user = f"user-{pick.randrange(profiles)}"
                return await http.get("/console/profiles", params={"q": user})

            await timed("profiles, search by customer user id", requests, search)

            async def profile_page(i: int) -> httpx.Response:
                return await http.get(f"/console/profiles/{pick.choice(ids)}")

            await timed("profile page", requests, profile_page)
            print(" JSON API (baseline)")
            await timed(
                "GET /api/v1/profiles",
                requests,
                lambda i: http.get("/api/v1/profiles", headers=auth),
            )

            async def api_profile(i: int) -> httpx.Response:
                return await http.get(f"/api/v1/profiles/{pick.choice(ids)}", headers=auth)

            await timed("GET /api/v1/profiles/{id}", requests, api_profile)
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.profiles, arguments.requests))
