"""Writes through the stream, read back from the read model (read-your-writes).

A write publishes its command to `profile.commands` and waits until the projector has
stored the fold's answer: a rejection (answered as the error it is), or an acceptance
whose profile version, once visible in the read model, answers the call. A call that
outlives `timeout` gets 202: the command is accepted and will apply.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prometheus_client import Histogram

from api.errors import ApiError
from api.reads import ReadModels
from ingress.publisher import Publisher
from runtime.catalog import Catalog
from schemas.commands import CommandBase
from schemas.outputs import Rejection

WAITED = Histogram(
    "subledger_api_write_seconds", "Command published until its effect was readable", ["kind"]
)
FIRST_POLL, LAST_POLL = 0.005, 0.05


@dataclass(frozen=True)
class Written:
    """The profile the command acted on, and whether its effect is readable yet."""

    profile_id: UUID
    visible: bool
    command_id: str


class CommandBus:
    def __init__(
        self, catalog: Catalog, publisher: Publisher, reads: ReadModels, timeout: float
    ) -> None:
        self.topic = catalog["profile_commands"].name
        self.publisher = publisher
        self.reads = reads
        self.timeout = timeout

    async def submit(self, command: CommandBase, transaction_id: str | None = None) -> Written:
        """Publish, then wait for the answer; `transaction_id` also waits for that purchase
        to reach the profile (it travels through its chain first)."""
        started = time.monotonic()
        await self.publisher.publish(
            self.topic, str(command.profile_id).encode(), command.model_dump_json().encode()
        )
        deadline = started + self.timeout
        pause = FIRST_POLL
        outcome: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            outcome = outcome or await self.reads.outcome(command.command_id)
            if outcome is not None:
                written = await self._answer(command, outcome, transaction_id)
                if written is not None:
                    WAITED.labels(getattr(command, "kind", "command")).observe(
                        time.monotonic() - started
                    )
                    return written
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_POLL)
        profile = UUID(outcome["profile_id"]) if outcome else command.profile_id
        return Written(profile, visible=False, command_id=command.command_id)

    async def _answer(
        self, command: CommandBase, outcome: dict[str, Any], transaction_id: str | None
    ) -> Written | None:
        kind = outcome["kind"]
        if kind == "rejection":
            raise ApiError.of(Rejection.model_validate(outcome))
        profile = UUID(outcome["profile_id"])
        # A create that named a held customer user id resolves to that profile.
        version = outcome.get("version") if kind == "applied" else None
        if await self.reads.visible(profile, version, transaction_id):
            return Written(profile, visible=True, command_id=command.command_id)
        return None
