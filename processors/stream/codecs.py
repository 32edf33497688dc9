"""Faust codecs for fold state: the pydantic models' JSON, compressed.

State is written to its changelog on every change and kept there. It is repetitive
(the same chain's facts again and again), so zlib at its fastest level makes it about a
tenth of the size for ~40 us a write. Plain JSON is still read, so a changelog written
without compression recovers all the same.
"""

from __future__ import annotations

import zlib
from typing import Any

from faust.serializers import codecs
from pydantic import BaseModel

from schemas.state import ChainState, IdentityState, ProfileState


class ModelCodec(codecs.Codec):
    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.model = model

    def _dumps(self, value: Any) -> bytes:
        return zlib.compress(value.model_dump_json().encode(), 1)

    def _loads(self, data: bytes) -> Any:
        text = data if data[:1] == b"{" else zlib.decompress(data)
        return self.model.model_validate_json(text)


STATE_CODECS: dict[str, type[BaseModel]] = {
    "subledger-chain-state": ChainState,
    "subledger-profile-state": ProfileState,
    "subledger-identity-state": IdentityState,
}


def register() -> None:
    for name, model in STATE_CODECS.items():
        codecs.register(name, ModelCodec(model))
