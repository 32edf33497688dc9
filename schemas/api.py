"""HTTP contracts of the query API and the server-side API (facts 1.8, seeds 000-004)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.boundary import CountryCode, CurrencyCode, Email, Frozen, Instant
from schemas.enums import (
    CancellationReason,
    EmailEventKind,
    Environment,
    Gender,
    OfferCategory,
    OfferType,
    Platform,
    PurchaseStatus,
    Store,
    SubscriptionState,
)
from schemas.profile import (
    ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_TEXT,
    attribute_key_error,
    attribute_text_error,
)

# Money a request may name: no store sells for more, and PostgreSQL's numeric holds it. As
# text, a plain decimal (no sign, no exponent), so that the document says all a client
# needs to know.
MAX_AMOUNT = Decimal("1000000000")
AMOUNT_TEXT = r"^([0-9]{1,9}(\.[0-9]{1,12})?|1000000000(\.0{1,12})?)$"


def _amount(value: object) -> object:
    if isinstance(value, bool) or (isinstance(value, str) and not re.fullmatch(AMOUNT_TEXT, value)):
        raise ValueError('an amount is a number or a decimal text such as "9.99", at most 1e9')
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(ge=0, le=MAX_AMOUNT),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": float(MAX_AMOUNT)},
                {"type": "string", "pattern": AMOUNT_TEXT},
            ]
        }
    ),
]
# An id a store or the app gives (transaction, product, customer user id, ...).
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY)]

# --- the query API ----------------------------------------------------------------------


class ProfileFilters(Frozen):
    """What a segment is, and what the profile list filters by. Every field narrows."""

    subscription_state: list[SubscriptionState] = []
    purchase_status: list[PurchaseStatus] = []
    store: list[Store] = []
    country: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]] = Field(
        default=[], max_length=250
    )
    environment: Environment | None = None
    access_level: Identifier | None = None
    ltv_min: Amount | None = None
    ltv_max: Amount | None = None
    created_from: Instant | None = None
    created_to: Instant | None = None
    last_seen_from: Instant | None = None
    last_seen_to: Instant | None = None
    # Custom attributes that must hold exactly these values.
    attributes: dict[AttributeKey, Annotated[str, Field(max_length=50)] | StrictFloat] = Field(
        default={}, max_length=30
    )

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for low, high in (
            ("ltv_min", "ltv_max"),
            ("created_from", "created_to"),
            ("last_seen_from", "last_seen_to"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} must not be greater than {high}")
        return self


ProfileSort = Literal["ltv", "created_at", "last_seen_at", "last_activity_at"]


class ProfileQuery(ProfileFilters):
    segment: UUID | None = None
    # A profile id, customer user id, email (any case), phone, or store transaction id.
    q: str | None = Field(default=None, min_length=1, max_length=200)
    sort: ProfileSort = "created_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,500}$")


class PageQuery(Frozen):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,500}$")


class SegmentRequest(Frozen):
    name: str = Field(min_length=1, max_length=100)
    filters: ProfileFilters = ProfileFilters()


# --- the server-side API (Adapty v2) ------------------------------------------------------


class InstallationMetaBody(Frozen):
    device_id: Identifier
    device: str | None = None
    locale: str | None = None
    os: str | None = None
    platform: Platform | None = None
    timezone: str | None = None
    user_agent: str | None = None
    app_build: str | None = None
    app_version: str | None = None
    adapty_sdk_version: str | None = None
    idfa: str | None = None
    idfv: str | None = None
    advertising_id: str | None = None
    android_id: str | None = None
    android_app_set_id: str | None = None


def _day_text(value: object) -> object:
    """A date as the document writes it: YYYY-MM-DD, not a number or an instant."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PydanticCustomError("date_parsing", "must be a date written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_day_text)]


def _whole_number(value: object) -> object:
    """A JSON integer as such: not true, 1.0 or "1"."""
    if type(value) is not int:
        raise ValueError("must be an integer")
    return value


class ProfileFieldsBody(Frozen):
    """The profile fields (schemas.profile.ProfileFields) as the server-side API takes them."""

    first_name: str | None = None
    last_name: str | None = None
    gender: Gender | None = None
    email: Email | None = None
    phone_number: str | None = None
    birthday: Day | None = None
    ip_country: CountryCode | None = None
    store_country: str | None = None
    store: Store | None = None
    store_account_token: UUID | None = None
    att_status: Annotated[Literal[0, 1, 2, 3], BeforeValidator(_whole_number)] | None = None
    analytics_disabled: StrictBool | None = None
    installation_meta: InstallationMetaBody | None = None


class CustomAttributeBody(Frozen):
    """A custom attribute to set, by the fold's rules (DOMAIN.md 7), which it checks
    again for every command however it came."""

    key: Annotated[str, WithJsonSchema({"type": "string", "pattern": ATTRIBUTE_KEY})]
    # Strict: a text too long for a text must not pass as the number it spells.
    value: (
        Annotated[str, WithJsonSchema({"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT})]
        | StrictFloat
        | None
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problem = attribute_key_error(self.key)
        if problem is None and isinstance(self.value, str):
            problem = attribute_text_error(self.key, self.value)
        if problem is not None:
            raise ValueError(problem)
        return self

    @field_validator("value", mode="before")
    @classmethod
    def _string_or_number(cls, value: object) -> object:
        # JSON booleans would otherwise pass as the numbers 1 and 0.
        if isinstance(value, bool):
            raise ValueError("an attribute value is a string or a number")
        return value


class ProfileRequest(ProfileFieldsBody):
    """Create and update bodies: the profile fields plus custom attributes (seed 003)."""

    # Required, as in Adapty's request schema (facts 1.8).
    installation_meta: InstallationMetaBody
    ip_v4_address: str | None = None
    custom_attributes: list[CustomAttributeBody] = Field(default=[], max_length=30)


class AttributesRequest(Frozen):
    """Custom attributes to set; a null value removes its key (DOMAIN.md 7)."""

    custom_attributes: list[CustomAttributeBody] = Field(min_length=1, max_length=30)


class Price(Frozen):
    country: CountryCode
    currency: CurrencyCode
    value: Amount


class OfferRequest(Frozen):
    category: OfferCategory
    type: OfferType
    id: str | None = None


SUBSCRIPTION_FIELDS = ("originally_purchased_at", "expires_at", "renew_status")


class SetTransactionRequest(Frozen):
    """TransactionDTORequest: a one-time purchase or a subscription (facts 1.8.3)."""

    # A subscription must name its term and renewal (`api.server_side.to_set_transaction`
    # refuses one without, in Adapty's words); the document says so too.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "required": ["purchase_type"],
                "properties": {"purchase_type": {"const": "subscription"}},
            },
            "then": {
                "required": list(SUBSCRIPTION_FIELDS),
                "properties": {name: {"not": {"type": "null"}} for name in SUBSCRIPTION_FIELDS},
            },
        }
    )

    purchase_type: Literal["one_time_purchase", "subscription"]
    store: Store
    environment: Environment = Environment.PRODUCTION
    store_product_id: Identifier
    store_base_plan_id: Identifier | None = None
    store_transaction_id: str = Field(min_length=1, max_length=50)
    store_original_transaction_id: Identifier
    is_family_shared: StrictBool = False
    price: Price
    purchased_at: Instant
    variation_id: str | None = None
    offer: OfferRequest | None = None
    refunded_at: Instant | None = None
    cancellation_reason: CancellationReason | None = None
    # Subscriptions only.
    originally_purchased_at: Instant | None = None
    expires_at: Instant | None = None
    renew_status: StrictBool | None = None
    renew_status_changed_at: Instant | None = None
    billing_issue_detected_at: Instant | None = None
    grace_period_expires_at: Instant | None = None


class GrantRequest(Frozen):
    access_level_id: Identifier
    starts_at: Instant | None = None
    expires_at: Instant | None = None

    @model_validator(mode="after")
    def _term(self) -> Self:
        if self.starts_at and self.expires_at and self.expires_at <= self.starts_at:
            raise ValueError("expires_at must be later than starts_at")
        return self


class RevokeRequest(Frozen):
    access_level_id: Identifier
    revoke_at: Instant | None = None


class NoteRequest(Frozen):
    text: str


class TransferRequest(Frozen):
    to_profile_id: UUID


class RestoreRequest(Frozen):
    store: Store
    store_original_transaction_ids: list[Identifier] = Field(min_length=1, max_length=100)


class EmailEventRequest(Frozen):
    email_id: Identifier
    campaign_id: Identifier | None = None
    event: EmailEventKind
    occurred_at: Instant


# --- errors (DOMAIN.md section 8, facts 1.8.5) ------------------------------------------


def error_body(status: int, code: str, source: str | None, *messages: str) -> dict[str, object]:
    return {
        "errors": [{"source": source, "errors": list(messages)}],
        "error_code": code,
        "status_code": status,
    }
