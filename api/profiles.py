"""The query API: find, filter and open profiles; their journey; segments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import contract
from api.auth import ApiKeys
from api.bodies import body_of
from api.errors import PROFILE_DOES_NOT_EXIST, ApiError
from api.reads import ReadModels
from api.responses import json_response
from schemas.api import PageQuery, ProfileQuery, SegmentRequest

V1 = "/api/v1"


def query_router(reads: ReadModels, keys: ApiKeys) -> APIRouter:
    router = APIRouter(prefix=V1, dependencies=[Depends(keys.check)])

    @router.get(
        "/profiles", responses={**contract.answers(200, "ProfilePage"), **contract.errors(404, 409)}
    )
    async def list_profiles(query: Annotated[ProfileQuery, Query()]) -> Response:
        return json_response((await reads.profiles(query)).body())

    @router.get("/profiles/{profile_id}", responses=contract.answers(200, "ProfileData"))
    async def get_profile(profile_id: UUID) -> Response:
        view = await reads.profile(profile_id)
        if view is None:
            raise PROFILE_DOES_NOT_EXIST
        return json_response({"data": view})

    @router.get("/profiles/{profile_id}/events", responses=contract.answers(200, "EventPage"))
    async def profile_events(profile_id: UUID, page: Annotated[PageQuery, Query()]) -> Response:
        if not await reads.exists(profile_id):
            raise PROFILE_DOES_NOT_EXIST
        return json_response((await reads.events(profile_id, page, datetime.now(UTC))).body())

    @router.post(
        "/segments",
        responses={**contract.answers(201, "SegmentData", "Created."), **contract.errors(409)},
        status_code=201,
        openapi_extra=contract.body(SegmentRequest),
    )
    async def create_segment(request: Request) -> Response:
        body = await body_of(request, SegmentRequest)
        return json_response({"data": await reads.create_segment(body, datetime.now(UTC))}, 201)

    @router.get("/segments", responses=contract.answers(200, "SegmentList"))
    async def list_segments() -> Response:
        return json_response({"data": await reads.segments()})

    @router.delete("/segments/{segment_id}", status_code=204)
    async def delete_segment(segment_id: UUID) -> Response:
        if not await reads.delete_segment(segment_id):
            raise ApiError(404, "segment_does_not_exist", None, "Segment does not exist")
        return Response(status_code=204)

    return router
