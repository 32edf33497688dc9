"""Fold state on its changelog: each state, and the records kept beside it, as MessagePack.

A state's changelog record is keyed by the state's key; a record kept beside it (a chain's
transaction or observation, a profile's payment) by the state's key, a NUL byte, its kind
and its id, in the state's partition. So a change writes what it changed: the state and
the records that are new or changed, never a chain's whole history.

Changelogs written by earlier processors held each state as JSON: they are refused with
the way forward (a new processor version) rather than misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from schemas.base import Compact, replace
from schemas.state import (
    ChainState,
    IdentityState,
    Observation,
    Payment,
    ProfileState,
    TransactionFact,
)

SEPARATOR = b"\x00"
TRANSACTION = b"t"
OBSERVATION = b"o"
PAYMENT = b"p"
# Marks a state kept whole by a table store (a changelog head is a MessagePack array, never
# this byte): read back in one decode.
WHOLE = b"\x00"

_ENCODER = msgspec.msgpack.Encoder(decimal_format="string")


class StaleStateError(Exception):
    """A changelog record in a format this processor does not read."""


def encode(value: object) -> bytes:
    return _ENCODER.encode(value)


def beside(key: bytes, kind: bytes, ident: str) -> bytes:
    """The changelog key of a record kept beside the state at `key`."""
    return key + SEPARATOR + kind + ident.encode()


class ChainRecord(Compact, frozen=True, kw_only=True):
    """A chain's state as written: its tail names the facts kept beside it, by id."""

    state: ChainState
    transactions: tuple[str, ...] = ()
    observations: tuple[str, ...] = ()


class Layout:
    """How one table's states and the records beside them are written and read back."""

    # Whether `assemble` gathers every record of a kind (else it names the ones it needs),
    # and whether the states carry a next wake-up (`next_wakeup_at`) for the timer.
    gathers: bytes | None = None
    wakes = False

    def __init__(
        self, head: type[Any], kinds: dict[bytes, type[Any]], state: type[Any] | None = None
    ) -> None:
        self.head = head
        self.kinds = tuple(kinds)
        self._heads = msgspec.msgpack.Decoder(head)
        # A whole state, as a table on disk keeps it besides (rocks.py).
        self._states = msgspec.msgpack.Decoder(state or head)
        self._kinds = {kind: msgspec.msgpack.Decoder(t) for kind, t in kinds.items()}

    def decode(self, kind: bytes, data: bytes) -> Any:
        return self._kinds[kind].decode(data)

    def encode_head(self, state: Any) -> bytes:
        return encode(state)

    def check(self, data: bytes) -> None:
        """Refuse a state written by an earlier processor (JSON) rather than misread it."""
        if data[:1] in (b"{", b"x"):
            raise StaleStateError(
                f"a {self.head.__name__} changelog record written by an earlier processor: "
                "derive this processor's state with `subledger reprocess --version N` and run "
                "the workers with SUBLEDGER_PROCESSOR_VERSION=N"
            )

    def decode_state(self, data: bytes) -> Any:
        return self._states.decode(data)

    def decode_head(self, data: bytes) -> Any:
        """The state as written; `assemble` completes it from the records beside it."""
        self.check(data)
        return self._heads.decode(data)

    def assemble(self, written: Any, beside: Mapping[bytes, bytes]) -> Any:
        return written


class ChainLayout(Layout):
    def __init__(self) -> None:
        super().__init__(
            ChainRecord, {TRANSACTION: TransactionFact, OBSERVATION: Observation}, ChainState
        )

    def encode_head(self, state: Any) -> bytes:
        return encode(
            ChainRecord(
                state=replace(state, transactions={}, observations=()),
                transactions=tuple(state.transactions),
                observations=tuple(o.event_id for o in state.observations),
            )
        )

    def assemble(self, written: Any, beside: Mapping[bytes, bytes]) -> Any:
        record: ChainRecord = written
        transactions = {
            tid: self.decode(TRANSACTION, beside[TRANSACTION + tid.encode()])
            for tid in record.transactions
        }
        observations = tuple(
            self.decode(OBSERVATION, beside[OBSERVATION + eid.encode()])
            for eid in record.observations
        )
        return replace(record.state, transactions=transactions, observations=observations)


class ProfileLayout(Layout):
    gathers = PAYMENT
    wakes = True

    def __init__(self) -> None:
        super().__init__(ProfileState, {PAYMENT: Payment})

    def encode_head(self, state: Any) -> bytes:
        # Payments are records of their own; the state is written without them.
        return encode(replace(state, payments={}) if state.payments else state)

    def assemble(self, written: Any, beside: Mapping[bytes, bytes]) -> Any:
        payments = {}
        for sub, data in beside.items():
            if sub[:1] == PAYMENT:
                payment = self.decode(PAYMENT, data)
                payments[payment.key] = payment
        return replace(written, payments=payments) if payments else written


LAYOUTS: dict[str, Layout] = {
    "chains": ChainLayout(),
    "profiles": ProfileLayout(),
    "identities": Layout(IdentityState, {}),
}
