"""Profile data: the server-side API fields (seed 003, facts 1.8.1)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, field_validator

from schemas.base import Frozen, Instant
from schemas.enums import Gender, Platform, Store
from schemas.money import CountryCode


class InstallationMeta(Frozen):
    device_id: str = Field(min_length=1)
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


Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


class ProfileFields(Frozen):
    """Every field is optional: a patch names only what it changes."""

    first_name: str | None = None
    last_name: str | None = None
    gender: Gender | None = None
    email: Email | None = None
    phone_number: str | None = None
    birthday: date | None = None
    ip_country: CountryCode | None = None
    store_country: str | None = None
    store: Store | None = None
    store_account_token: UUID | None = None
    att_status: Literal[0, 1, 2, 3] | None = None
    analytics_disabled: bool | None = None
    installation_meta: InstallationMeta | None = None


AttributeValue = str | float


class CustomAttribute(Frozen):
    """Key and length rules are the fold's (DOMAIN.md 7), so that a bad one is a rejection."""

    key: str
    value: AttributeValue | None

    @field_validator("value", mode="before")
    @classmethod
    def _string_or_number(cls, value: object) -> object:
        # JSON booleans would otherwise pass as the numbers 1 and 0.
        if isinstance(value, bool):
            raise ValueError("an attribute value is a string or a number")
        return value


class Note(Frozen):
    note_id: str
    text: str
    created_at: Instant
    updated_at: Instant
