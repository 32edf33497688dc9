"""Faust codecs for fold state: JSON of the pydantic models, as on every topic."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs
from pydantic import BaseModel

from schemas.state import ChainState, IdentityState, ProfileState


class ModelCodec(codecs.Codec):
    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.model = model

    def _dumps(self, value: Any) -> bytes:
        return value.model_dump_json().encode()  # type: ignore[no-any-return]

    def _loads(self, data: bytes) -> Any:
        return self.model.model_validate_json(data)


STATE_CODECS: dict[str, type[BaseModel]] = {
    "subledger-chain-state": ChainState,
    "subledger-profile-state": ProfileState,
    "subledger-identity-state": IdentityState,
}


def register() -> None:
    for name, model in STATE_CODECS.items():
        codecs.register(name, ModelCodec(model))
