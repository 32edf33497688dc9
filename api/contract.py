"""The OpenAPI document: what FastAPI reads from the signatures, completed with what it
cannot see. Bodies are read by `body_of` (so a bad one answers 400 in the DOMAIN.md 8
shape, not FastAPI's 422): an operation names its body model with `body(...)`, which
puts it in the document; the server-side API's headers likewise. Every operation under
/api/ is behind the API-key scheme, and each lists the errors it can answer, in the one
error shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

# Every body model an operation names, by schema name.
_BODIES: dict[str, type[BaseModel]] = {}

HEADERS: dict[str, dict[str, Any]] = {
    "adapty-profile-id": {
        "name": "adapty-profile-id",
        "in": "header",
        "description": "The profile's id (a UUID); one of it and adapty-customer-user-id.",
        "schema": {"type": "string", "format": "uuid"},
    },
    "adapty-customer-user-id": {
        "name": "adapty-customer-user-id",
        "in": "header",
        "description": "The app's own id of the customer (at most 255 characters).",
        "schema": {"type": "string", "maxLength": 255},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "A write sent again with the same key is applied once.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
}
PROFILE_HEADERS = ("adapty-profile-id", "adapty-customer-user-id", "Idempotency-Key")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error (DOMAIN.md 8, Adapty's codes).",
    "required": ["errors", "error_code", "status_code"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["source", "errors"],
                "properties": {
                    "source": {"type": ["string", "null"]},
                    "errors": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "error_code": {"type": "string", "examples": ["validation_error"]},
        "status_code": {"type": "integer", "examples": [400]},
    },
}
_WHY = {
    "400": "The request does not hold what the operation takes; nothing changed.",
    "401": "The API key is missing or not one of the configured keys.",
    "404": "No such profile, segment, endpoint or delivery.",
    "413": "The body is larger than the configured limit.",
    "503": "The broker or the database is out of reach; retry later (Retry-After).",
}


def body(model: type[BaseModel], headers: Iterable[str] = ()) -> dict[str, Any]:
    """`openapi_extra` for an operation that reads `model` with `body_of` (and headers)."""
    _BODIES[model.__name__] = model
    extra: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }
    if headers:
        extra["parameters"] = [HEADERS[name] for name in headers]
    return extra


def headers(*names: str) -> dict[str, Any]:
    """`openapi_extra` for an operation that reads only headers."""
    return {"parameters": [HEADERS[name] for name in names]}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (made once, then cached as FastAPI does)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, model in sorted(_BODIES.items()):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for inner, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(inner, definition)
        schemas[name] = schema
    schemas["Error"] = ERROR_SCHEMA
    # FastAPI's own 422 shapes: never answered here (a bad request is a 400 in ours).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, one of the keys in SUBLEDGER_API_KEYS.",
        }
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            _complete(path, method, operation)
    app.openapi_schema = spec
    return spec


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    statuses = ["503"]
    if path.startswith("/api/"):
        operation["security"] = [{"ApiKey": []}]
        statuses.append("401")
    if "requestBody" in operation:
        statuses += ["400", "413"]
    elif operation.get("parameters"):
        statuses.append("400")
    if "{" in path or (path.startswith("/api/") and "server-side-api" in path):
        statuses.append("404")
    if path.startswith("/webhooks/"):
        statuses += ["400", "401", "413"]
    if "server-side-api" in path and method != "get":
        responses.setdefault(
            "202",
            {"description": "Published; the read model did not show it within the wait."},
        )
    for status in sorted(set(statuses)):
        responses.setdefault(
            status,
            {
                "description": _WHY[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
