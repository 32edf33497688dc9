"""Fold state on the changelogs: compressed, and read back exactly."""

from __future__ import annotations

from processors.stream.codecs import ModelCodec
from schemas.state import ProfileState
from tests.builders import ALICE, Chain, day
from tests.helpers import run


def test_state_round_trips_compressed_and_plain() -> None:
    chain = Chain()
    ledger = run([chain.buy(f"t{i}", day(30 * i), day(30 * (i + 1))) for i in range(10)], day(1))
    state = ledger.profiles[ALICE]
    codec = ModelCodec(ProfileState)
    packed = codec.dumps(state)
    plain = state.model_dump_json().encode()
    assert len(packed) < len(plain) / 4
    assert codec.loads(packed) == state
    assert codec.loads(plain) == state  # written before compression, read all the same
