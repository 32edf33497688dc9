"""Fold state on its changelog: the pydantic models' JSON.

The producer compresses whole batches (zstd), which does better on a batch of similar
states than one state at a time could. Older changelogs held each state zlib-compressed;
they are still read.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from faust.serializers import codecs
from pydantic import BaseModel

from schemas.state import ChainState, IdentityState, ProfileState


def encode_state(state: BaseModel) -> bytes:
    # Defaults are left out: most of a transaction's fields are empty, and reading the
    # state back fills them in.
    return state.model_dump_json(exclude_defaults=True).encode()


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class ModelCodec(codecs.Codec):
    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.model = model

    def _dumps(self, value: Any) -> bytes:
        return encode_state(value)

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
