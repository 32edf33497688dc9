"""The server-side API, Adapty v2 compatible (facts 1.8), plus the profile commands of
DOMAIN.md 7 (notes, transfer, restore, email events, unsubscribe) under /api/v1/.

Every write is a command on `profile.commands`; the answer is the profile once the read
model shows the write (read-your-writes), or 202 when that takes longer than allowed.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api import contract
from api.auth import ApiKeys
from api.bodies import body_of
from api.commands import CommandBus, Written
from api.errors import PROFILE_DOES_NOT_EXIST, ApiError
from api.reads import ReadModels
from api.responses import json_response
from processors.core.validation import transaction_error
from processors.normalize.money import Rates, UnknownCurrencyError
from schemas.api import (
    SUBSCRIPTION_FIELDS,
    AttributesRequest,
    EmailEventRequest,
    GrantRequest,
    NoteRequest,
    ProfileRequest,
    RestoreRequest,
    RevokeRequest,
    SetTransactionRequest,
    TransferRequest,
)
from schemas.base import from_builtins
from schemas.commands import (
    AddNote,
    CommandBase,
    CreateProfile,
    DeleteNote,
    DeleteProfile,
    EditNote,
    GrantAccessLevel,
    RecordEmailEvent,
    RestorePurchases,
    RevokeAccessLevel,
    SetCustomAttributes,
    SetTransaction,
    TransferAccess,
    Unsubscribe,
    UpdateProfile,
)
from schemas.enums import CancellationReason, OfferCategory
from schemas.events import Offer, RenewalInfo, TransactionInfo, chain_key_of
from schemas.profile import PROFILE_FIELD_NAMES, CustomAttribute, ProfileFields

V2 = "/api/v2/server-side-api"
V1 = "/api/v1/server-side-api"
PROFILE_HEADER, CUSTOMER_HEADER = "adapty-profile-id", "adapty-customer-user-id"


def adapty_profile(view: dict[str, Any], app_id: UUID) -> dict[str, Any]:
    """The Adapty Profile object (facts 1.8.2); lists carry subledger's extra fields too."""
    segments = sorted(str(s["segment_id"]) for s in view.get("segments", ()))
    return {
        "app_id": str(app_id),
        "profile_id": view["profile_id"],
        "customer_user_id": view.get("customer_user_id"),
        # Adapty's contract is a JSON number; the exact amount is in the query API.
        "total_revenue_usd": float(Decimal(view["revenue"]["total_revenue_usd"])),
        "segment_hash": hashlib.sha1("|".join(segments).encode()).hexdigest()[:16],
        "timestamp": int(time.time() * 1000),
        "custom_attributes": [
            {"key": key, "value": value}
            for key, value in sorted((view.get("custom_attributes") or {}).items())
        ],
        "access_levels": view.get("access_levels", []),
        "subscriptions": view.get("subscriptions", []),
        "non_subscriptions": view.get("non_subscriptions", []),
    }


MAX_IDENTIFIER = 255


def _profile_id(header: str) -> UUID:
    """The profile id a header names: a UUID written as the document says."""
    if not re.fullmatch(contract.UUID_TEXT, header):
        raise ApiError(400, "validation_error", PROFILE_HEADER, "must be a UUID")
    return UUID(header)


def _customer_of(request: Request) -> str | None:
    """The customer user id the headers name, if any (an id of the app's: 1-255 chars)."""
    customer = request.headers.get(CUSTOMER_HEADER)
    if customer is not None and not 1 <= len(customer) <= MAX_IDENTIFIER:
        raise ApiError(
            400, "validation_error", CUSTOMER_HEADER, f"must be 1 to {MAX_IDENTIFIER} characters"
        )
    return customer


def to_set_transaction(
    body: SetTransactionRequest, profile_id: UUID, command_id: str, now: datetime, rates: Rates
) -> SetTransaction:
    """The request as a command, or the first Adapty validation error (facts 1.8.5)."""
    subscription = body.purchase_type == "subscription"
    if subscription:
        for name in SUBSCRIPTION_FIELDS:
            if getattr(body, name) is None:
                raise ApiError(400, "base_error", name, "Field required")
        assert body.expires_at is not None
        if body.expires_at <= body.purchased_at:
            raise ApiError(
                400,
                "expires_date_error",
                "expires_at",
                "expires_at must be later than purchased_at",
            )
        changed = body.renew_status_changed_at
        if changed is not None and changed <= body.purchased_at:
            raise ApiError(
                400,
                "renew_status_changed_date_error",
                "renew_status_changed_at",
                "renew_status_changed_at must be later than purchased_at",
            )
    offer = body.offer
    if offer is not None and offer.category is not OfferCategory.INTRODUCTORY and offer.id is None:
        raise ApiError(
            400, "missing_offer_id", "offer.category", "offer.id is required for this category"
        )
    try:
        price_usd = rates.to_usd(body.price.value, body.price.currency)
    except UnknownCurrencyError as error:
        raise ApiError(400, "validation_error", "price.currency", str(error)) from None
    refunded = body.refunded_at is not None or body.cancellation_reason is CancellationReason.REFUND
    transaction = TransactionInfo(
        transaction_id=body.store_transaction_id,
        original_transaction_id=body.store_original_transaction_id,
        product_id=body.store_product_id,
        base_plan_id=body.store_base_plan_id,
        is_subscription=subscription,
        purchased_at=body.purchased_at,
        originally_purchased_at=body.originally_purchased_at,
        expires_at=body.expires_at if subscription else None,
        offer=Offer(category=offer.category, type=offer.type, id=offer.id) if offer else None,
        price_local=body.price.value,
        currency=body.price.currency,
        price_usd=price_usd,
        store_country=body.price.country,
        is_family_shared=body.is_family_shared,
        revoked_at=body.refunded_at,
        revocation_reason=body.cancellation_reason if refunded else None,
    )
    renewal = None
    if subscription:
        renewal = RenewalInfo(
            auto_renew=bool(body.renew_status),
            cancellation_reason=None if refunded else body.cancellation_reason,
            in_billing_retry=body.billing_issue_detected_at is not None,
            billing_issue_detected_at=body.billing_issue_detected_at,
            grace_period_expires_at=body.grace_period_expires_at,
        )
    command = SetTransaction(
        command_id=command_id,
        issued_at=now,
        profile_id=profile_id,
        store=body.store,
        environment=body.environment,
        transaction=transaction,
        renewal=renewal,
    )
    problem = transaction_error(command)
    if problem is not None:
        raise ApiError(400, *problem)
    return command


def server_side_router(
    bus: CommandBus, reads: ReadModels, keys: ApiKeys, app_id: UUID, rates: Rates
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(keys.check)])
    # Adapty's endpoints answer its Profile object; subledger's own, the whole profile.
    ADAPTY = contract.answers(200, "AdaptyProfileData")
    FULL = contract.answers(200, "ProfileData")

    def command_id(request: Request) -> str:
        given = request.headers.get("idempotency-key")
        if given is not None and not 1 <= len(given) <= MAX_IDENTIFIER:
            raise ApiError(
                400,
                "validation_error",
                "Idempotency-Key",
                f"must be 1 to {MAX_IDENTIFIER} characters",
            )
        return given or str(uuid.uuid4())

    async def addressed(request: Request, status_if_unknown: int = 404) -> UUID:
        """The profile the headers name; it must exist."""
        profile = request.headers.get(PROFILE_HEADER)
        customer = _customer_of(request)
        found: UUID | None = None
        if profile is not None:
            found = _profile_id(profile)
            if not await reads.exists(found):
                found = None
        elif customer is not None:
            found = await reads.profile_id_of(customer)
        else:
            raise ApiError(
                400,
                "validation_error",
                "non_field_errors",
                f"either {CUSTOMER_HEADER} or {PROFILE_HEADER} is required",
            )
        if found is None:
            error = PROFILE_DOES_NOT_EXIST
            if status_if_unknown != 404:
                error = ApiError(status_if_unknown, error.code, "non_field_errors", error.message)
            raise error
        return found

    async def answer(written: Written, full: bool = False) -> Response:
        if not written.visible:
            return json_response(
                {
                    "status": "accepted",
                    "command_id": written.command_id,
                    "profile_id": str(written.profile_id),
                },
                202,
            )
        view = await reads.profile(written.profile_id)
        if view is None:
            raise PROFILE_DOES_NOT_EXIST
        return json_response({"data": view if full else adapty_profile(view, app_id)})

    async def write(command: CommandBase, transaction_id: str | None = None) -> Written:
        return await bus.submit(command, transaction_id)

    def now() -> datetime:
        return datetime.now(UTC)

    def about(request: Request, profile: UUID) -> dict[str, Any]:
        """What every command carries: its id, when it was issued, the profile it acts on."""
        return {"command_id": command_id(request), "issued_at": now(), "profile_id": profile}

    # --- profile (v2) ---------------------------------------------------------------------

    @router.post(
        f"{V2}/profile/",
        responses=ADAPTY,
        openapi_extra=contract.body(ProfileRequest, contract.PROFILE_HEADERS),
    )
    async def create_profile(request: Request) -> Response:
        body = await body_of(request, ProfileRequest)
        customer = _customer_of(request)
        given = request.headers.get(PROFILE_HEADER)
        profile = _profile_id(given) if given is not None else uuid.uuid4()
        if customer is not None and given is None:
            known = await reads.profile_id_of(customer)
            if known is not None:
                return await answer(Written(known, True, ""))
        command = CreateProfile(
            **about(request, profile),
            customer_user_id=customer,
            fields=_fields(body, PROFILE_FIELD_NAMES),
            custom_attributes=_attributes(body),
        )
        return await answer(await write(command))

    @router.get(
        f"{V2}/profile/",
        responses=ADAPTY,
        openapi_extra=contract.headers(*contract.ADDRESS_HEADERS),
    )
    async def get_profile(request: Request) -> Response:
        return await answer(Written(await addressed(request), True, ""))

    @router.patch(
        f"{V2}/profile/",
        responses=ADAPTY,
        openapi_extra=contract.body(ProfileRequest, contract.PROFILE_HEADERS),
    )
    async def update_profile(request: Request) -> Response:
        body = await body_of(request, ProfileRequest)
        profile = await addressed(request)
        given = body.model_fields_set & PROFILE_FIELD_NAMES
        command = UpdateProfile(
            **about(request, profile),
            fields=_fields(body, given),
            unset=tuple(sorted(f for f in given if getattr(body, f) is None)),
            custom_attributes=_attributes(body),
            seen_at=now(),
        )
        return await answer(await write(command))

    @router.delete(
        f"{V2}/profile/",
        status_code=204,
        openapi_extra=contract.headers(*contract.PROFILE_HEADERS),
    )
    async def delete_profile(request: Request) -> Response:
        profile = await addressed(request)
        written = await write(DeleteProfile(**about(request, profile)))
        return Response(status_code=204 if written.visible else 202)

    # --- purchases (v2) -------------------------------------------------------------------

    @router.post(
        f"{V2}/purchase/set/transaction/",
        responses=ADAPTY,
        openapi_extra=contract.body(SetTransactionRequest, contract.PROFILE_HEADERS),
    )
    async def set_transaction(request: Request) -> Response:
        body = await body_of(request, SetTransactionRequest)
        profile = await addressed(request, status_if_unknown=400)
        command = to_set_transaction(body, profile, command_id(request), now(), rates)
        return await answer(await write(command, body.store_transaction_id))

    @router.post(
        f"{V2}/purchase/profile/grant/access-level/",
        responses=ADAPTY,
        openapi_extra=contract.body(GrantRequest, contract.PROFILE_HEADERS),
    )
    async def grant(request: Request) -> Response:
        body = await body_of(request, GrantRequest)
        profile = await addressed(request, status_if_unknown=400)
        command = GrantAccessLevel(
            **about(request, profile),
            access_level_id=body.access_level_id,
            starts_at=body.starts_at,
            expires_at=body.expires_at,
        )
        return await answer(await write(command))

    @router.post(
        f"{V2}/purchase/profile/revoke/access-level/",
        responses=ADAPTY,
        openapi_extra=contract.body(RevokeRequest, contract.PROFILE_HEADERS),
    )
    async def revoke(request: Request) -> Response:
        body = await body_of(request, RevokeRequest)
        profile = await addressed(request, status_if_unknown=400)
        command = RevokeAccessLevel(
            **about(request, profile),
            access_level_id=body.access_level_id,
            revoke_at=body.revoke_at,
        )
        return await answer(await write(command))

    # --- profile commands (v1) ------------------------------------------------------------

    @router.post(
        f"{V1}/profile/notes/",
        responses=FULL,
        openapi_extra=contract.body(NoteRequest, contract.PROFILE_HEADERS),
    )
    async def add_note(request: Request) -> Response:
        body = await body_of(request, NoteRequest)
        profile = await addressed(request)
        command = AddNote(
            **about(request, profile),
            note_id=str(uuid.uuid4()),
            text=body.text,
        )
        return await answer(await write(command), full=True)

    @router.patch(
        f"{V1}/profile/notes/{{note_id}}/",
        responses=FULL,
        openapi_extra=contract.body(NoteRequest, contract.PROFILE_HEADERS),
    )
    async def edit_note(note_id: str, request: Request) -> Response:
        body = await body_of(request, NoteRequest)
        profile = await addressed(request)
        command = EditNote(
            **about(request, profile),
            note_id=note_id,
            text=body.text,
        )
        return await answer(await write(command), full=True)

    @router.delete(
        f"{V1}/profile/notes/{{note_id}}/",
        responses=FULL,
        openapi_extra=contract.headers(*contract.PROFILE_HEADERS),
    )
    async def delete_note(note_id: str, request: Request) -> Response:
        profile = await addressed(request)
        command = DeleteNote(**about(request, profile), note_id=note_id)
        return await answer(await write(command), full=True)

    @router.post(
        f"{V1}/profile/attributes/",
        responses=FULL,
        openapi_extra=contract.body(AttributesRequest, contract.PROFILE_HEADERS),
    )
    async def set_attributes(request: Request) -> Response:
        """Custom attributes alone: no installation, and the profile is not seen by it."""
        body = await body_of(request, AttributesRequest)
        profile = await addressed(request)
        command = SetCustomAttributes(
            **about(request, profile),
            custom_attributes=tuple(
                CustomAttribute(key=a.key, value=a.value) for a in body.custom_attributes
            ),
        )
        return await answer(await write(command), full=True)

    @router.post(
        f"{V1}/profile/transfer/",
        responses=FULL,
        openapi_extra=contract.body(TransferRequest, contract.PROFILE_HEADERS),
    )
    async def transfer(request: Request) -> Response:
        body = await body_of(request, TransferRequest)
        profile = await addressed(request)
        if body.to_profile_id == profile:
            raise ApiError(
                400, "validation_error", "to_profile_id", "cannot transfer to the same profile"
            )
        if not await reads.exists(body.to_profile_id):
            raise ApiError(404, "profile_does_not_exist", "to_profile_id", "Profile does not exist")
        command = TransferAccess(
            **about(request, profile),
            to_profile_id=body.to_profile_id,
        )
        return await answer(await write(command), full=True)

    @router.post(
        f"{V1}/profile/restore/",
        responses=FULL,
        openapi_extra=contract.body(RestoreRequest, contract.PROFILE_HEADERS),
    )
    async def restore(request: Request) -> Response:
        body = await body_of(request, RestoreRequest)
        profile = await addressed(request)
        ids = body.store_original_transaction_ids
        command = RestorePurchases(
            **about(request, profile),
            chain_keys=tuple(chain_key_of(body.store, i) for i in ids),
        )
        return await answer(await write(command, ids[0]), full=True)

    @router.post(
        f"{V1}/profile/email-events/",
        responses=FULL,
        openapi_extra=contract.body(EmailEventRequest, contract.PROFILE_HEADERS),
    )
    async def email_event(request: Request) -> Response:
        body = await body_of(request, EmailEventRequest)
        profile = await addressed(request)
        command = RecordEmailEvent(
            **about(request, profile),
            email_id=body.email_id,
            campaign_id=body.campaign_id,
            event=body.event,
            occurred_at=body.occurred_at,
        )
        return await answer(await write(command), full=True)

    @router.post(
        f"{V1}/profile/unsubscribe/",
        responses=FULL,
        openapi_extra=contract.headers(*contract.PROFILE_HEADERS),
    )
    async def unsubscribe(request: Request) -> Response:
        profile = await addressed(request)
        command = Unsubscribe(
            **about(request, profile),
        )
        return await answer(await write(command), full=True)

    return router


def _fields(body: ProfileRequest, names: frozenset[str] | set[str]) -> ProfileFields:
    """The named profile fields of a body (validated by pydantic) as the fold takes them."""
    given = body.model_dump(mode="json", include=set(names), exclude_none=True)
    return from_builtins(ProfileFields, given)


def _attributes(body: ProfileRequest) -> tuple[CustomAttribute, ...]:
    return tuple(CustomAttribute(key=a.key, value=a.value) for a in body.custom_attributes)
