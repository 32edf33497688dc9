"""The webhook dispatcher: signed deliveries, retried, in order per profile and endpoint.

Deliveries are made by the projector, in the transaction that stores their event, one per
endpoint that wants it (`webhook_deliveries`). The dispatcher sends them:

- signed with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
  `webhook-signature: v1,<base64 HMAC-SHA256>` per valid secret); the `webhook-id` is the
  delivery's and never changes, so a receiver dedupes a repeat;
- in order per (endpoint, profile): only the oldest pending delivery of a pair is sent,
  and the next one waits for it to succeed or be given up;
- retried on any answer other than 2xx, or none within the timeout, after each delay of
  the schedule (with jitter); then marked failed. An endpoint failing for longer than
  `disable_after` is disabled.

Every attempt's outcome is written before the next is chosen, so a crash loses nothing:
an attempt in flight when it happened is made again (at least once, same `webhook-id`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
from prometheus_client import Counter, Histogram
from standardwebhooks.webhooks import Webhook

from projections import addresses
from runtime.health import Health
from runtime.reconnect import reconnecting

log = logging.getLogger(__name__)

# Svix's schedule: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
ATTEMPTS = Counter("subledger_webhook_attempts_total", "Webhook attempts", ["outcome"])
LAG = Histogram(
    "subledger_webhook_first_attempt_seconds",
    "From a delivery's creation to its first attempt",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
CHANNEL = "subledger_webhooks"
COUNT_UNDELIVERED = """
    SELECT count(*) FILTER (WHERE d.status = 'failed'),
           count(*) FILTER (WHERE d.status = 'pending' AND w.disabled_at IS NOT NULL)
    FROM webhook_deliveries d JOIN webhook_endpoints w USING (endpoint_id)
    WHERE d.status IN ('failed', 'pending')
"""
# How often an idle dispatcher counts the deliveries that gave up, for /ready.
COUNT_FAILED_EVERY = 5.0


@dataclass(frozen=True)
class Policy:
    schedule: Sequence[float] = SCHEDULE
    timeout: float = 15.0
    disable_after: timedelta = timedelta(days=5)
    concurrency: int = 500
    jitter: float = 0.1

    def delay(self, attempts: int) -> float | None:
        """Seconds until the next attempt after `attempts` failed ones; None: give up."""
        if attempts > len(self.schedule):
            return None
        base = self.schedule[attempts - 1]
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def signature(secrets: Sequence[str], webhook_id: str, at: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,<sig>` per valid secret."""
    return " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets)


@dataclass(frozen=True)
class Due:
    delivery_id: int
    webhook_id: str
    endpoint_id: UUID
    profile_id: UUID
    payload: str
    attempts: int
    created_at: datetime
    url: str
    authorization: str | None
    secrets: list[str]


# The head of each (endpoint, profile) queue, when it is due.
HEADS = """
    SELECT d.delivery_id, d.webhook_id, d.endpoint_id, d.profile_id, d.payload, d.attempts,
           d.created_at, w.url, w.authorization, w.secrets
    FROM (
        SELECT DISTINCT ON (endpoint_id, profile_id) *
        FROM webhook_deliveries
        WHERE status = 'pending'
        ORDER BY endpoint_id, profile_id, sequence
    ) AS d
    JOIN webhook_endpoints w USING (endpoint_id)
    WHERE w.disabled_at IS NULL AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT %s
"""


class Dispatcher:
    def __init__(self, dsn: str, policy: Policy = Policy(), allow_private: bool = False) -> None:
        self.dsn = dsn
        self.policy = policy
        # Endpoints may be on loopback, link-local or private addresses (development).
        self.allow_private = allow_private
        self._in_flight: set[tuple[UUID, UUID]] = set()
        # Deliveries whose attempt was recorded while a query for heads may have been
        # running: its answer can still show them pending.
        self._recorded: set[int] = set()
        self._wake = asyncio.Event()
        # Ready once connected to the database it sends from.
        self.health = Health("dispatcher")
        self._counted_at = float("-inf")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Send until `stop`; a lost database connection is reopened with backoff, and
        sending resumes from the deliveries the database holds."""
        stop = stop or asyncio.Event()
        await reconnecting("dispatcher", self.health, lambda: self._session(stop), stop)

    async def _session(self, stop: asyncio.Event) -> None:
        self._in_flight.clear()
        self._recorded.clear()
        limits = httpx.Limits(
            max_connections=self.policy.concurrency,
            max_keepalive_connections=self.policy.concurrency,
        )
        async with (
            await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as reader,
            await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as writer,
            httpx.AsyncClient(
                timeout=self.policy.timeout,
                transport=addresses.transport(limits, self.allow_private),
            ) as http,
        ):
            self.health.set(None)
            listener = asyncio.create_task(self._listen(stop))
            tasks: set[asyncio.Task[None]] = set()
            lock = asyncio.Lock()
            try:
                while not stop.is_set():
                    room = self.policy.concurrency - len(tasks)
                    heads = await self._heads(reader, room) if room > 0 else []
                    for due in heads:
                        key = (due.endpoint_id, due.profile_id)
                        self._in_flight.add(key)
                        task = asyncio.create_task(self._attempt(http, writer, lock, due))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if heads:
                        continue
                    await self._count_failed(reader)
                    self._wake.clear()
                    waits = [asyncio.create_task(self._wake.wait())]
                    with_stop = asyncio.create_task(stop.wait())
                    await asyncio.wait(
                        [*waits, with_stop], timeout=0.5, return_when="FIRST_COMPLETED"
                    )
                    for pending in (*waits, with_stop):
                        pending.cancel()
            finally:
                listener.cancel()
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def _count_failed(self, reader: psycopg.AsyncConnection[Any]) -> None:
        """While idle, every few seconds, for /ready: the deliveries that gave up, and those
        held by a disabled endpoint (an operator enables it or redelivers them)."""
        if time.monotonic() - self._counted_at < COUNT_FAILED_EVERY:
            return
        self._counted_at = time.monotonic()
        cursor = await reader.execute(COUNT_UNDELIVERED)
        failed, held = await cursor.fetchone() or (0, 0)
        self.health.count("failed_deliveries", int(failed))
        self.health.count("held_deliveries", int(held))

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake up when the projector commits new deliveries."""
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for _ in conn.notifies():
                self._wake.set()
                if stop.is_set():
                    return

    async def _heads(self, reader: psycopg.AsyncConnection[Any], room: int) -> list[Due]:
        settled = set(self._recorded)  # committed before this query: it sees them
        cursor = await reader.execute(HEADS, (room + len(self._in_flight),))
        heads = [Due(*row) for row in await cursor.fetchall()]
        self._recorded -= settled
        # Recorded while the query ran: its answer may be older than the record.
        late = self._recorded
        fresh = [
            h
            for h in heads
            if (h.endpoint_id, h.profile_id) not in self._in_flight and h.delivery_id not in late
        ]
        return fresh[:room]

    async def _attempt(
        self,
        http: httpx.AsyncClient,
        writer: psycopg.AsyncConnection[Any],
        lock: asyncio.Lock,
        due: Due,
    ) -> None:
        try:
            if due.attempts == 0:
                LAG.observe(max(0.0, (datetime.now(UTC) - due.created_at).total_seconds()))
            status, error, elapsed = await self._send(http, due)
            async with lock:
                await self._record(writer, due, status, error, elapsed)
        except psycopg.OperationalError as error:
            # The database went away (its session starts again): the delivery stays due
            # and is sent again under the same webhook-id.
            log.warning(
                "webhook %s: the attempt was not recorded (%s); it will be sent again",
                due.webhook_id,
                type(error).__name__,
            )
        except Exception:
            log.exception("webhook %s: recording the attempt failed", due.webhook_id)
        finally:
            self._recorded.add(due.delivery_id)
            self._in_flight.discard((due.endpoint_id, due.profile_id))
            self._wake.set()

    async def _send(
        self, http: httpx.AsyncClient, due: Due
    ) -> tuple[int | None, str | None, float]:
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": due.webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature(due.secrets, due.webhook_id, at, due.payload),
        }
        if due.authorization:
            headers["authorization"] = due.authorization
        started = time.perf_counter()
        try:
            response = await http.post(due.url, content=due.payload.encode(), headers=headers)
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}", time.perf_counter() - started
        return response.status_code, None, time.perf_counter() - started

    async def _record(
        self,
        writer: psycopg.AsyncConnection[Any],
        due: Due,
        status: int | None,
        error: str | None,
        elapsed: float,
    ) -> None:
        attempt = due.attempts + 1
        succeeded = status is not None and 200 <= status < 300
        ATTEMPTS.labels("succeeded" if succeeded else "failed").inc()
        async with writer.transaction():
            await writer.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, "
                "error, duration_ms) VALUES (%s, %s, now(), %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (due.delivery_id, attempt, status, error, int(elapsed * 1000)),
            )
            if succeeded:
                await writer.execute(
                    "UPDATE webhook_deliveries SET status = 'succeeded', attempts = %s, "
                    "delivered_at = now(), last_status_code = %s, last_error = NULL "
                    "WHERE delivery_id = %s",
                    (attempt, status, due.delivery_id),
                )
                await writer.execute(
                    "UPDATE webhook_endpoints SET failing_since = NULL "
                    "WHERE endpoint_id = %s AND failing_since IS NOT NULL",
                    (due.endpoint_id,),
                )
                return
            delay = self.policy.delay(attempt)
            await writer.execute(
                "UPDATE webhook_deliveries SET status = %s, attempts = %s, "
                "next_attempt_at = now() + make_interval(secs => %s), "
                "last_status_code = %s, last_error = %s WHERE delivery_id = %s",
                (
                    "failed" if delay is None else "pending",
                    attempt,
                    delay or 0.0,
                    status,
                    error or f"HTTP {status}",
                    due.delivery_id,
                ),
            )
            await writer.execute(
                "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()), "
                "disabled_at = CASE WHEN coalesce(failing_since, now()) < now() - %s "
                "THEN now() END WHERE endpoint_id = %s",
                (self.policy.disable_after, due.endpoint_id),
            )
