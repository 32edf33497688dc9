"""Profile commands: what the server-side API and operators ask of a profile (DOMAIN.md 7).

Every command carries a deterministic `command_id` (its idempotency key) and the instant
it was issued. Commands are imperative; the events the fold emits for them are past tense.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import Field, model_validator

from schemas.base import Frozen, Instant
from schemas.enums import EmailEventKind, Environment, Store
from schemas.events import RenewalInfo, TransactionInfo
from schemas.profile import CustomAttribute, ProfileFields


class CommandBase(Frozen):
    command_id: str = Field(min_length=1)
    issued_at: Instant
    profile_id: UUID


class CreateProfile(CommandBase):
    """Create a profile, or identify it when `customer_user_id` is given."""

    kind: Literal["create_profile"] = "create_profile"
    customer_user_id: str | None = Field(default=None, min_length=1)
    fields: ProfileFields = ProfileFields()
    custom_attributes: tuple[CustomAttribute, ...] = ()


class IdentifyProfile(CommandBase):
    kind: Literal["identify_profile"] = "identify_profile"
    customer_user_id: str = Field(min_length=1)


class UpdateProfile(CommandBase):
    kind: Literal["update_profile"] = "update_profile"
    fields: ProfileFields = ProfileFields()
    # Field names to clear (a JSON null in the API's PATCH body).
    unset: tuple[str, ...] = ()
    custom_attributes: tuple[CustomAttribute, ...] = ()
    seen_at: Instant | None = None

    @model_validator(mode="after")
    def _unset_names_fields(self) -> Self:
        unknown = set(self.unset) - set(ProfileFields.model_fields)
        if unknown:
            raise ValueError(f"unknown profile fields: {sorted(unknown)}")
        return self


class SetCustomAttributes(CommandBase):
    kind: Literal["set_custom_attributes"] = "set_custom_attributes"
    custom_attributes: tuple[CustomAttribute, ...]


class SetTransaction(CommandBase):
    """Record a transaction made outside the connected stores' webhooks (facts 1.8.3)."""

    kind: Literal["set_transaction"] = "set_transaction"
    store: Store
    environment: Environment = Environment.PRODUCTION
    transaction: TransactionInfo
    renewal: RenewalInfo | None = None


class GrantAccessLevel(CommandBase):
    kind: Literal["grant_access_level"] = "grant_access_level"
    access_level_id: str = Field(min_length=1)
    starts_at: Instant | None = None
    # None grants lifetime access.
    expires_at: Instant | None = None


class RevokeAccessLevel(CommandBase):
    kind: Literal["revoke_access_level"] = "revoke_access_level"
    access_level_id: str = Field(min_length=1)
    # None revokes at once.
    revoke_at: Instant | None = None


class AddNote(CommandBase):
    kind: Literal["add_note"] = "add_note"
    note_id: str = Field(min_length=1)
    text: str


class EditNote(CommandBase):
    kind: Literal["edit_note"] = "edit_note"
    note_id: str = Field(min_length=1)
    text: str


class DeleteNote(CommandBase):
    kind: Literal["delete_note"] = "delete_note"
    note_id: str = Field(min_length=1)


class TransferAccess(CommandBase):
    """Move every store purchase of `profile_id` to `to_profile_id`."""

    kind: Literal["transfer_access"] = "transfer_access"
    to_profile_id: UUID

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.to_profile_id == self.profile_id:
            raise ValueError("cannot transfer access to the same profile")
        return self


class RestorePurchases(CommandBase):
    """The profile restored these store chains (its device's store account owns them)."""

    kind: Literal["restore_purchases"] = "restore_purchases"
    chain_keys: tuple[str, ...] = Field(min_length=1)


class DeleteProfile(CommandBase):
    kind: Literal["delete_profile"] = "delete_profile"


class RecordEmailEvent(CommandBase):
    kind: Literal["record_email_event"] = "record_email_event"
    email_id: str = Field(min_length=1)
    campaign_id: str | None = None
    event: EmailEventKind
    occurred_at: Instant


class Unsubscribe(CommandBase):
    kind: Literal["unsubscribe"] = "unsubscribe"


Command = Annotated[
    CreateProfile
    | IdentifyProfile
    | UpdateProfile
    | SetCustomAttributes
    | SetTransaction
    | GrantAccessLevel
    | RevokeAccessLevel
    | AddNote
    | EditNote
    | DeleteNote
    | TransferAccess
    | RestorePurchases
    | DeleteProfile
    | RecordEmailEvent
    | Unsubscribe,
    Field(discriminator="kind"),
]
