"""Profile data: the server-side API fields (seed 003, facts 1.8.1)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from schemas.base import Instant, NonEmpty, Record, require, utc
from schemas.enums import Gender, Platform, Store
from schemas.money import CountryCode


class InstallationMeta(Record, frozen=True, kw_only=True):
    device_id: NonEmpty
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


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A custom attribute (DOMAIN.md 7): its key, and how long a text value may be.
ATTRIBUTE_KEY = r"^[A-Za-z0-9._-]{1,30}$"
MAX_ATTRIBUTE_TEXT = 50


def attribute_key_error(key: str) -> str | None:
    if re.fullmatch(ATTRIBUTE_KEY, key):
        return None
    return f"key {key!r} must be 1-30 letters, digits, '-', '.' or '_'"


def attribute_text_error(key: str, value: str) -> str | None:
    if len(value) <= MAX_ATTRIBUTE_TEXT:
        return None
    return f"value of {key!r} must be at most {MAX_ATTRIBUTE_TEXT} characters"


Email = Annotated[str, msgspec.Meta(pattern=EMAIL_PATTERN, max_length=254)]


class ProfileFields(Record, frozen=True, kw_only=True):
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


PROFILE_FIELD_NAMES = frozenset(ProfileFields.__struct_fields__)

AttributeValue = str | float


class CustomAttribute(Record, frozen=True, kw_only=True):
    """Key and length rules are the fold's (DOMAIN.md 7), so that a bad one is a rejection."""

    key: str
    # A JSON boolean is refused by the type itself: it is not a string nor a number.
    value: AttributeValue | None

    def __post_init__(self) -> None:
        require(not isinstance(self.value, bool), "an attribute value is a string or a number")


class Note(Record, frozen=True, kw_only=True):
    note_id: str
    text: str
    created_at: Instant
    updated_at: Instant

    def __post_init__(self) -> None:
        utc(self, ("created_at", "updated_at"))
