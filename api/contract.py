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

from api.answers import components as answers_components

_ANSWER = "#/components/schemas/"
# Every body model an operation names, by schema name.
_BODIES: dict[str, type[BaseModel]] = {}

UUID_TEXT = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
HEADERS: dict[str, dict[str, Any]] = {
    "adapty-profile-id": {
        "name": "adapty-profile-id",
        "in": "header",
        "description": "The profile's id (a UUID); one of it and adapty-customer-user-id.",
        # A pattern, not `format: uuid`: generated clients then take the id as text,
        # which is how a header travels.
        "schema": {"type": "string", "pattern": UUID_TEXT},
    },
    "adapty-customer-user-id": {
        "name": "adapty-customer-user-id",
        "in": "header",
        "description": "The app's own id of the customer (1 to 255 characters).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "A write sent again with the same key is applied once.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
}
ADDRESS_HEADERS = ("adapty-profile-id", "adapty-customer-user-id")
PROFILE_HEADERS = (*ADDRESS_HEADERS, "Idempotency-Key")
# What every text the API takes holds (`schemas.boundary.unkeepable` refuses the rest).
KEEPABLE_TEXT = "^[^\\u0000]*$"

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
    "409": "It conflicts with what exists (a name taken, a stored segment this version refuses).",
    "413": "The body is larger than the configured limit.",
    "503": "The broker or the database is out of reach; retry later (Retry-After).",
}


# A request each body model takes, shown with its operations (the seeds' own where they
# give one: seed 003 and facts 1.8 for the server-side API).
EXAMPLES: dict[str, dict[str, Any]] = {
    "ProfileRequest": {
        "first_name": "Ann",
        "email": "ann@example.com",
        "ip_country": "US",
        "custom_attributes": [{"key": "tier", "value": "gold"}],
        "installation_meta": {"device_id": "device-1", "platform": "iOS", "app_version": "1.2"},
    },
    "SetTransactionRequest": {
        "purchase_type": "subscription",
        "store": "app_store",
        "store_product_id": "premium.monthly",
        "store_transaction_id": "2000000002",
        "store_original_transaction_id": "2000000001",
        "price": {"country": "US", "currency": "USD", "value": "9.99"},
        "purchased_at": "2026-12-01T00:00:00Z",
        "originally_purchased_at": "2026-11-01T00:00:00Z",
        "expires_at": "2027-01-01T00:00:00Z",
        "renew_status": True,
    },
    "GrantRequest": {"access_level_id": "premium", "expires_at": "2027-01-01T00:00:00Z"},
    "RevokeRequest": {"access_level_id": "premium"},
    "NoteRequest": {"text": "Asked for a refund **twice**; granted a month."},
    "AttributesRequest": {
        "custom_attributes": [{"key": "tier", "value": "gold"}, {"key": "old", "value": None}]
    },
    "TransferRequest": {"to_profile_id": "5b1ed6e5-0000-4000-8000-000000000002"},
    "RestoreRequest": {"store": "app_store", "store_original_transaction_ids": ["2000000001"]},
    "EmailEventRequest": {
        "email_id": "welcome-1",
        "campaign_id": "welcome",
        "event": "opened",
        "occurred_at": "2026-12-01T10:00:00Z",
    },
    "SegmentRequest": {
        "name": "gold payers",
        "filters": {"subscription_state": ["subscribed"], "ltv_min": "10"},
    },
    "EndpointRequest": {
        "url": "https://example.com/hooks/subledger",
        "event_types": ["subscription_started", "subscription_renewed"],
        "verify": False,
    },
    "RedeliverRange": {
        "endpoint_id": "8f0c2a4e-1d7b-4c39-9a55-3e6f1b2d7c80",
        "since": "2026-12-01T00:00:00Z",
        "status": "failed",
    },
}


def body(model: type[BaseModel], headers: Iterable[str] = ()) -> dict[str, Any]:
    """`openapi_extra` for an operation that reads `model` with `body_of` (and headers)."""
    _BODIES[model.__name__] = model
    content = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {"application/json": content}}
    }
    if headers:
        extra["parameters"] = [HEADERS[name] for name in headers]
    return extra


def answers(status: int, schema: str, description: str = "") -> dict[int | str, Any]:
    """`responses` for an operation that answers `status` with the component `schema`
    (one of `api.answers.components`)."""
    return {
        status: {
            "description": description or "Done.",
            "content": {"application/json": {"schema": {"$ref": _ANSWER + schema}}},
        }
    }


def errors(*statuses: int) -> dict[int | str, Any]:
    """`responses` for the errors an operation answers beyond those every one of its kind
    does (`_complete`)."""
    return {str(status): _error(str(status)) for status in statuses}


def _error(status: str) -> dict[str, Any]:
    return {
        "description": _WHY[status],
        "content": {"application/json": {"schema": {"$ref": _ANSWER + "Error"}}},
    }


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
            schemas.setdefault(inner, _keepable(definition))
        schemas[name] = _keepable(schema)
    for name, schema in answers_components().items():
        if not _same(schemas.setdefault(name, schema), schema):
            raise ValueError(f"two schemas are named {name}: a body's and an answer's")
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


def _keepable(schema: Any) -> Any:
    """`schema` with every free text in it marked as holding no NUL character."""
    if isinstance(schema, list):
        for item in schema:
            _keepable(item)
    elif isinstance(schema, dict):
        if schema.get("type") == "string" and not schema.keys() & {"pattern", "format", "enum"}:
            schema["pattern"] = KEEPABLE_TEXT
        if "patternProperties" in schema:
            # A key that matches none of the patterns is refused (pydantic's dict keys).
            schema.setdefault("additionalProperties", False)
            schema.pop("propertyNames", None)
        for key in ("properties", "patternProperties", "$defs"):
            for inner in schema.get(key, {}).values():
                _keepable(inner)
        for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "schema"):
            if key in schema:
                _keepable(schema[key])
    return schema


def _same(kept: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two components say the same (an enum that pydantic and msgspec both
    describe, each in its own order)."""
    if "enum" in kept and "enum" in other:
        return set(kept["enum"]) == set(other["enum"])
    return kept == other


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", ()):
        if parameter["in"] in ("query", "path"):
            _keepable(parameter["schema"])
    if "requestBody" in operation:
        # Added here, not through `openapi_extra`: FastAPI drops the nulls of what it is
        # given (an attribute's `"value": null` removes it).
        content = operation["requestBody"]["content"]["application/json"]
        name = content["schema"].get("$ref", "").rsplit("/", 1)[-1]
        if name in EXAMPLES:
            content["example"] = EXAMPLES[name]
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
        waited = "Published; the read model did not show it within the wait."
        accepted: dict[str, Any] = {"description": waited}
        if "204" not in responses:
            accepted["content"] = {"application/json": {"schema": {"$ref": _ANSWER + "Accepted"}}}
        responses.setdefault("202", accepted)
    for status in sorted(set(statuses)):
        responses.setdefault(status, _error(status))
    operation["responses"] = dict(sorted(responses.items()))
