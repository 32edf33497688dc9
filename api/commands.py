"""Writes through the stream, read back from the read model (read-your-writes).

A write publishes its command to `profile.commands` and waits until the projector has
stored the fold's answer: a rejection (answered as the error it is), or an acceptance
whose profile version, once visible in the read model, answers the call. A call that
outlives `timeout` gets 202: the command is accepted and will apply. The projector
notifies every commit that wrote profiles or outcomes; a waiting call looks again then,
and every few tens of milliseconds besides, should a notification be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from prometheus_client import Histogram

from api.errors import ApiError
from api.reads import ReadModels
from ingress.publisher import Publisher
from projections.projector import PROJECTED
from runtime.catalog import Catalog
from schemas.base import from_builtins, to_json
from schemas.commands import CommandBase
from schemas.outputs import Rejection

WAITED = Histogram(
    "subledger_api_write_seconds", "Command published until its effect was readable", ["kind"]
)
FIRST_POLL, LAST_POLL = 0.005, 0.05

log = logging.getLogger(__name__)


class Projections:
    """The projector's commits, counted as they are notified."""

    def __init__(self) -> None:
        self.generation = 0
        self._next = asyncio.Event()

    def committed(self) -> None:
        self.generation += 1
        self._next.set()
        self._next = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once a commit after generation `seen` is notified, or after `timeout`."""
        if self.generation != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._next.wait(), timeout)

    async def listen(self, dsn: str) -> None:
        """LISTEN on the projector's channel until cancelled, connecting again after a
        failure (meanwhile callers fall back to looking every LAST_POLL)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PROJECTED}")
                    async for _ in conn.notifies():
                        self.committed()
            except psycopg.Error as error:
                log.warning("listening for projections failed: %s", error)
                await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Written:
    """The profile the command acted on, and whether its effect is readable yet."""

    profile_id: UUID
    visible: bool
    command_id: str


class CommandBus:
    def __init__(
        self,
        catalog: Catalog,
        publisher: Publisher,
        reads: ReadModels,
        timeout: float,
        projections: Projections | None = None,
    ) -> None:
        self.topic = catalog["profile_commands"].name
        self.publisher = publisher
        self.reads = reads
        self.timeout = timeout
        self.projections = projections or Projections()

    async def submit(self, command: CommandBase, transaction_id: str | None = None) -> Written:
        """Publish, then wait for the answer; `transaction_id` also waits for that purchase
        to reach the profile (it travels through its chain first)."""
        started = time.monotonic()
        await self.publisher.publish(self.topic, str(command.profile_id).encode(), to_json(command))
        deadline = started + self.timeout
        pause = FIRST_POLL
        outcome: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            seen = self.projections.generation
            outcome = outcome or await self.reads.outcome(command.command_id)
            if outcome is not None:
                written = await self._answer(command, outcome, transaction_id)
                if written is not None:
                    WAITED.labels(getattr(command, "kind", "command")).observe(
                        time.monotonic() - started
                    )
                    return written
            await self.projections.wait(seen, min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 2, LAST_POLL)
        profile = UUID(outcome["profile_id"]) if outcome else command.profile_id
        return Written(profile, visible=False, command_id=command.command_id)

    async def _answer(
        self, command: CommandBase, outcome: dict[str, Any], transaction_id: str | None
    ) -> Written | None:
        kind = outcome["kind"]
        if kind == "rejection":
            raise ApiError.of(from_builtins(Rejection, outcome))
        profile = UUID(outcome["profile_id"])
        # A resolution (a create that named a held customer user id) carries no version:
        # the profile it names need only exist.
        version, events = None, []
        if kind == "applied":
            version = outcome["version"]
            events = [UUID(e) for e in outcome.get("event_ids", ())]
        if await self.reads.visible(profile, version, transaction_id, events):
            return Written(profile, visible=True, command_id=command.command_id)
        return None
