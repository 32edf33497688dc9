"""Webhook endpoints and deliveries, managed over the API."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import httpcore
import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field, HttpUrl, StrictBool
from sqlalchemy.ext.asyncio import AsyncEngine

from api import contract
from api.auth import ApiKeys
from api.bodies import body_of
from api.errors import ApiError
from api.responses import json_response
from projections import addresses, tables
from schemas.boundary import Frozen, Instant
from schemas.enums import EventType

E = tables.webhook_endpoints.c
D = tables.webhook_deliveries.c
A = tables.webhook_attempts.c
V1 = "/api/v1/webhooks"
HANDSHAKE_TIMEOUT = 10.0
# Delivery ids are PostgreSQL bigints.
MAX_DELIVERY_ID = 2**63 - 1


class EndpointRequest(Frozen):
    url: HttpUrl
    event_types: list[EventType] = []
    environment: Literal["production", "sandbox", "both"] = "production"
    authorization: str | None = Field(default=None, max_length=1000)
    # Adapty's handshake: POST {"adapty_check": token}, expect {"adapty_check_response": token}.
    verify: StrictBool = True


class RedeliverRange(Frozen):
    endpoint_id: UUID
    since: Instant
    until: Instant | None = None
    status: Literal["failed", "succeeded", "any"] = "failed"


class DeliveryQuery(Frozen):
    endpoint_id: UUID | None = None
    profile_id: UUID | None = None
    status: Literal["pending", "succeeded", "failed"] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    # The `next_cursor` of the previous page: the paging convention of every list.
    cursor: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,18}$")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _endpoint(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["secrets"] = list(data["secrets"])
    return {str(k): v for k, v in data.items()}


async def handshake(url: str, authorization: str | None, allow_private: bool) -> None:
    token = secrets.token_urlsafe(16)
    headers = {"authorization": authorization} if authorization else {}
    # Connected to the public address checked as it connects, as the dispatcher does.
    reach = addresses.transport(httpx.Limits(max_connections=1), allow_private)
    try:
        async with httpx.AsyncClient(timeout=HANDSHAKE_TIMEOUT, transport=reach) as http:
            response = await http.post(url, json={"adapty_check": token}, headers=headers)
        answer = response.json() if response.status_code in (200, 201) else {}
    except (httpx.HTTPError, ValueError):
        answer = {}
    if not isinstance(answer, dict) or answer.get("adapty_check_response") != token:
        raise ApiError(
            400,
            "endpoint_check_failed",
            "url",
            "the endpoint did not answer the adapty_check handshake with its token",
        )


async def refuse_private(url: str) -> None:
    """Refuses an endpoint whose host is, or resolves to, a loopback, link-local, private
    or otherwise non-public address: the dispatcher would POST into the operator's network
    (a cloud's metadata service at 169.254.169.254, say). The dispatcher checks again as
    it connects (`projections/addresses.py`)."""
    address = httpx.URL(url)
    try:
        await addresses.public_address(address.host, address.port or 443)
    except addresses.NotPublicError as error:
        raise ApiError(400, "validation_error", "url", f"the endpoint: {error}") from None
    except httpcore.ConnectError:
        raise ApiError(
            400, "validation_error", "url", "the endpoint's host does not resolve"
        ) from None


def webhooks_router(engine: AsyncEngine, keys: ApiKeys, allow_private: bool = False) -> APIRouter:
    router = APIRouter(prefix=V1, dependencies=[Depends(keys.check)])
    ENDPOINT = contract.answers(200, "WebhookEndpointData")

    async def one(endpoint_id: UUID) -> Any:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(tables.webhook_endpoints).where(E.endpoint_id == endpoint_id)
                )
            ).first()
        if row is None:
            raise ApiError(404, "endpoint_does_not_exist", None, "Endpoint does not exist")
        return row

    @router.post(
        "/endpoints",
        responses=contract.answers(201, "WebhookEndpointData", "Created."),
        status_code=201,
        openapi_extra=contract.body(EndpointRequest),
    )
    async def create(request: Request) -> Response:
        body = await body_of(request, EndpointRequest)
        if not allow_private:
            await refuse_private(str(body.url))
        if body.verify:
            await handshake(str(body.url), body.authorization, allow_private)
        endpoint_id = uuid.uuid4()
        values = {
            "endpoint_id": endpoint_id,
            "url": str(body.url),
            "event_types": [t.value for t in body.event_types],
            "environment": body.environment,
            "authorization": body.authorization,
            "secrets": [new_secret()],
            "created_at": datetime.now(UTC),
        }
        async with engine.begin() as connection:
            await connection.execute(sa.insert(tables.webhook_endpoints).values(**values))
        return json_response({"data": _endpoint(await one(endpoint_id))}, 201)

    @router.get("/endpoints", responses=contract.answers(200, "WebhookEndpointList"))
    async def endpoints() -> Response:
        async with engine.connect() as connection:
            rows = await connection.execute(
                sa.select(tables.webhook_endpoints).order_by(E.created_at)
            )
            return json_response({"data": [_endpoint(r) for r in rows]})

    @router.delete("/endpoints/{endpoint_id}", status_code=204)
    async def delete(endpoint_id: UUID) -> Response:
        await one(endpoint_id)
        async with engine.begin() as connection:
            await connection.execute(
                sa.delete(tables.webhook_deliveries).where(
                    D.endpoint_id == endpoint_id, D.status == "pending"
                )
            )
            await connection.execute(
                sa.delete(tables.webhook_endpoints).where(E.endpoint_id == endpoint_id)
            )
        return Response(status_code=204)

    @router.post("/endpoints/{endpoint_id}/rotate-secret", responses=ENDPOINT)
    async def rotate(endpoint_id: UUID) -> Response:
        """A new secret signs from now on; the previous one stays valid beside it."""
        row = await one(endpoint_id)
        rotated = [new_secret(), row.secrets[0]]
        async with engine.begin() as connection:
            await connection.execute(
                sa.update(tables.webhook_endpoints)
                .where(E.endpoint_id == endpoint_id)
                .values(secrets=rotated)
            )
        return json_response({"data": _endpoint(await one(endpoint_id))})

    @router.post("/endpoints/{endpoint_id}/enable", responses=ENDPOINT)
    async def enable(endpoint_id: UUID) -> Response:
        await one(endpoint_id)
        async with engine.begin() as connection:
            await connection.execute(
                sa.update(tables.webhook_endpoints)
                .where(E.endpoint_id == endpoint_id)
                .values(disabled_at=None, failing_since=None)
            )
        return json_response({"data": _endpoint(await one(endpoint_id))})

    @router.post("/endpoints/{endpoint_id}/disable", responses=ENDPOINT)
    async def disable(endpoint_id: UUID) -> Response:
        """No delivery is attempted while disabled; pending ones wait for `enable`."""
        row = await one(endpoint_id)
        if row.disabled_at is None:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.update(tables.webhook_endpoints)
                    .where(E.endpoint_id == endpoint_id)
                    .values(disabled_at=sa.func.now())
                )
        return json_response({"data": _endpoint(await one(endpoint_id))})

    @router.get("/deliveries", responses=contract.answers(200, "DeliveryPage"))
    async def deliveries(query: Annotated[DeliveryQuery, Query()]) -> Response:
        where = []
        if query.endpoint_id is not None:
            where.append(D.endpoint_id == query.endpoint_id)
        if query.profile_id is not None:
            where.append(D.profile_id == query.profile_id)
        if query.status is not None:
            where.append(D.status == query.status)
        if query.cursor is not None:
            where.append(D.delivery_id < int(query.cursor))
        columns = [c for c in tables.webhook_deliveries.c if c.name != "payload"]
        async with engine.connect() as connection:
            rows = [
                {str(k): v for k, v in r._mapping.items()}
                for r in await connection.execute(
                    sa.select(*columns)
                    .where(*where)
                    .order_by(D.delivery_id.desc())
                    .limit(query.limit)
                )
            ]
            ids = [r["delivery_id"] for r in rows]
            attempts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            for a in await connection.execute(
                sa.select(tables.webhook_attempts)
                .where(A.delivery_id.in_(ids))
                .order_by(A.delivery_id, A.attempt)
            ):
                attempts[a.delivery_id].append({str(k): v for k, v in a._mapping.items()})
        for row in rows:
            row["attempt_log"] = attempts[row["delivery_id"]]
        more = len(rows) == query.limit
        return json_response(
            {"data": rows, "next_cursor": str(rows[-1]["delivery_id"]) if more and rows else None}
        )

    @router.post(
        "/deliveries/{delivery_id}/redeliver", responses=contract.answers(200, "Redelivery")
    )
    async def redeliver(
        delivery_id: Annotated[int, Path(ge=1, le=MAX_DELIVERY_ID)],
    ) -> Response:
        async with engine.begin() as connection:
            result = await connection.execute(
                sa.update(tables.webhook_deliveries)
                .where(D.delivery_id == delivery_id)
                .values(status="pending", next_attempt_at=sa.func.now())
            )
        if not result.rowcount:
            raise ApiError(404, "delivery_does_not_exist", None, "Delivery does not exist")
        return json_response({"data": {"delivery_id": delivery_id, "status": "pending"}})

    @router.post(
        "/deliveries/redeliver",
        responses={**contract.answers(200, "Redelivering"), **contract.errors(404)},
        openapi_extra=contract.body(RedeliverRange),
    )
    async def redeliver_range(request: Request) -> Response:
        body = await body_of(request, RedeliverRange)
        await one(body.endpoint_id)
        where = [D.endpoint_id == body.endpoint_id, D.created_at >= body.since]
        if body.until is not None:
            where.append(D.created_at <= body.until)
        if body.status != "any":
            where.append(D.status == body.status)
        async with engine.begin() as connection:
            result = await connection.execute(
                sa.update(tables.webhook_deliveries)
                .where(*where)
                .values(status="pending", next_attempt_at=sa.func.now())
            )
        return json_response({"data": {"redelivering": result.rowcount}})

    return router
