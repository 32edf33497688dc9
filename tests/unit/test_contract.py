"""The OpenAPI document: committed, complete, and agreeing with what the API accepts."""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator

from api import webhooks
from api.app import SPEC_FILE, create_api, database_engine, openapi_document
from api.bodies import validated
from api.errors import ApiError
from ingress.app import Ingress
from runtime.catalog import load_catalog
from runtime.settings import Settings
from schemas import api as bodies
from tests.unit.test_ingress_app_store import MemoryPublisher

SPEC = openapi_document()
OPERATIONS = [
    (path, method, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
]


def test_the_committed_document_is_the_one_the_service_serves() -> None:
    """docs/openapi.json is regenerated with `subledger openapi`: a change to the contract
    shows in review."""
    committed = orjson.loads(SPEC_FILE.read_bytes())
    assert committed == orjson.loads(orjson.dumps(SPEC)), "run `subledger openapi`"


async def test_openapi_json_is_the_document() -> None:
    engine = database_engine("postgresql://127.0.0.1:1/unused")
    app = create_api(Ingress(load_catalog(), MemoryPublisher()), engine, Settings(console=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        served = (await http.get("/openapi.json")).json()
    await engine.dispose()
    assert served == orjson.loads(orjson.dumps(SPEC))


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS)
def test_each_operation_documents_its_key_and_errors(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    assert "422" not in responses  # a bad request is a 400 in the one error shape
    assert "503" in responses
    if path.startswith("/api/"):
        assert operation["security"] == [{"ApiKey": []}]
        assert "401" in responses
    if "requestBody" in operation:
        assert {"400", "413"} <= set(responses)
    if "server-side-api" in path:
        names = {p["name"] for p in operation["parameters"]}
        assert {"adapty-profile-id", "adapty-customer-user-id"} <= names
        assert ("Idempotency-Key" in names) == (method != "get")


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS)
def test_each_answer_with_a_body_names_its_schema(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        # Deleting a profile answers 204, or 202 while pending: neither has a body.
        if status == "204" or (status == "202" and "204" in operation["responses"]):
            assert "content" not in response, (path, method, status)
            continue
        schema = response["content"]["application/json"]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/"), (path, method, status)


def test_every_body_an_operation_reads_is_in_the_document() -> None:
    """An endpoint that reads a body with `body_of` names it, and only such an endpoint."""
    engine = database_engine("postgresql://127.0.0.1:1/unused")
    app = create_api(Ingress(load_catalog(), MemoryPublisher()), engine, Settings(console=False))
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if not getattr(route, "include_in_schema", False) or not methods:
            continue
        source = inspect.getsource(route.endpoint)  # type: ignore[attr-defined]
        for method in methods:
            operation = SPEC["paths"][route.path][method.lower()]  # type: ignore[attr-defined]
            # The store webhooks read their raw bytes: a signature covers them exactly.
            reads = "body_of(" in source or "request.body()" in source
            assert reads == ("requestBody" in operation), route.path  # type: ignore[attr-defined]


def test_every_reference_resolves() -> None:
    schemas = SPEC["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(SPEC):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


BODIES = [
    (path, method, operation["requestBody"]["content"]["application/json"])
    for path, method, operation in OPERATIONS
    if "$ref"
    in operation.get("requestBody", {})
    .get("content", {})
    .get("application/json", {})
    .get("schema", {})
]


@pytest.mark.parametrize(("path", "method", "content"), BODIES)
def test_the_example_of_every_body_is_one_the_api_accepts_and_the_document_allows(
    path: str, method: str, content: dict[str, Any]
) -> None:
    name = content["schema"]["$ref"].rsplit("/", 1)[1]
    example = content["example"]
    model = getattr(bodies, name, None) or getattr(webhooks, name)
    validated(model, example)  # the API takes it
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    errors = list(Draft202012Validator(schema).iter_errors(example))
    assert errors == [], [e.message for e in errors]


def test_a_body_the_document_refuses_the_api_refuses_too() -> None:
    """The two agree on what is wrong as well: a grant without its access level."""
    schema = {"$ref": "#/components/schemas/GrantRequest", "components": SPEC["components"]}
    wrong = {"expires_at": "2027-01-01T00:00:00Z", "extra": 1}
    assert list(Draft202012Validator(schema).iter_errors(wrong))
    with pytest.raises(ApiError):
        validated(bodies.GrantRequest, wrong)
