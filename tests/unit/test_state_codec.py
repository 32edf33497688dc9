"""Fold state on the changelogs: read back exactly, in the current and the older form."""

from __future__ import annotations

import zlib

from processors.stream.codecs import ModelCodec
from schemas.state import ProfileState
from tests.builders import ALICE, Chain, day
from tests.helpers import run


def test_state_round_trips_plain_and_from_older_compressed_changelogs() -> None:
    chain = Chain()
    ledger = run([chain.buy(f"t{i}", day(30 * i), day(30 * (i + 1))) for i in range(10)], day(1))
    state = ledger.profiles[ALICE]
    codec = ModelCodec(ProfileState)
    written = codec.dumps(state)
    assert codec.loads(written) == state
    older = zlib.compress(written, 1)
    assert codec.loads(older) == state
