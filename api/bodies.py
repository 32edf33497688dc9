"""Request bodies: JSON validated against their contract, refused in Adapty's terms."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, from_validation

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], document: Any) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise from_validation(error) from None


async def body_of(request: Request, model: type[M]) -> M:
    """The body as `model`; an empty body is an empty object."""
    raw = await request.body()
    document: Any = {}
    if raw.strip():
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(
                400, "validation_error", "non_field_errors", "the body is not JSON"
            ) from None
    return validated(model, document)
