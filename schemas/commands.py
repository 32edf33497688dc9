"""Profile commands: what the server-side API and operators ask of a profile (DOMAIN.md 7).

Every command carries a deterministic `command_id` (its idempotency key) and the instant
it was issued. Commands are imperative; the events the fold emits for them are past tense.
"""

from __future__ import annotations

from uuid import UUID

from schemas.base import Instant, NonEmpty, Record, require, utc
from schemas.enums import EmailEventKind, Environment, Store
from schemas.events import RenewalInfo, TransactionInfo
from schemas.profile import PROFILE_FIELD_NAMES, CustomAttribute, ProfileFields


class CommandBase(Record, tag_field="kind", frozen=True, kw_only=True, omit_defaults=True):
    command_id: NonEmpty
    issued_at: Instant
    profile_id: UUID

    def __post_init__(self) -> None:
        utc(self, ("issued_at",))


class CreateProfile(
    CommandBase, tag="create_profile", frozen=True, kw_only=True, omit_defaults=True
):
    """Create a profile, or identify it when `customer_user_id` is given."""

    customer_user_id: NonEmpty | None = None
    fields: ProfileFields = ProfileFields()
    custom_attributes: tuple[CustomAttribute, ...] = ()


class IdentifyProfile(
    CommandBase, tag="identify_profile", frozen=True, kw_only=True, omit_defaults=True
):
    customer_user_id: NonEmpty


class UpdateProfile(
    CommandBase, tag="update_profile", frozen=True, kw_only=True, omit_defaults=True
):
    fields: ProfileFields = ProfileFields()
    # Field names to clear (a JSON null in the API's PATCH body).
    unset: tuple[str, ...] = ()
    custom_attributes: tuple[CustomAttribute, ...] = ()
    seen_at: Instant | None = None

    def __post_init__(self) -> None:
        utc(self, ("issued_at", "seen_at"))
        unknown = set(self.unset) - PROFILE_FIELD_NAMES
        require(not unknown, f"unknown profile fields: {sorted(unknown)}")


class SetCustomAttributes(
    CommandBase, tag="set_custom_attributes", frozen=True, kw_only=True, omit_defaults=True
):
    custom_attributes: tuple[CustomAttribute, ...]


class SetTransaction(
    CommandBase, tag="set_transaction", frozen=True, kw_only=True, omit_defaults=True
):
    """Record a transaction made outside the connected stores' webhooks (facts 1.8.3)."""

    store: Store
    environment: Environment = Environment.PRODUCTION
    transaction: TransactionInfo
    renewal: RenewalInfo | None = None


class GrantAccessLevel(
    CommandBase, tag="grant_access_level", frozen=True, kw_only=True, omit_defaults=True
):
    access_level_id: NonEmpty
    starts_at: Instant | None = None
    # None grants lifetime access.
    expires_at: Instant | None = None

    def __post_init__(self) -> None:
        utc(self, ("issued_at", "starts_at", "expires_at"))


class RevokeAccessLevel(
    CommandBase, tag="revoke_access_level", frozen=True, kw_only=True, omit_defaults=True
):
    access_level_id: NonEmpty
    # None revokes at once.
    revoke_at: Instant | None = None

    def __post_init__(self) -> None:
        utc(self, ("issued_at", "revoke_at"))


class AddNote(CommandBase, tag="add_note", frozen=True, kw_only=True, omit_defaults=True):
    note_id: NonEmpty
    text: str


class EditNote(CommandBase, tag="edit_note", frozen=True, kw_only=True, omit_defaults=True):
    note_id: NonEmpty
    text: str


class DeleteNote(CommandBase, tag="delete_note", frozen=True, kw_only=True, omit_defaults=True):
    note_id: NonEmpty


class TransferAccess(
    CommandBase, tag="transfer_access", frozen=True, kw_only=True, omit_defaults=True
):
    """Move every store purchase of `profile_id` to `to_profile_id`."""

    to_profile_id: UUID

    def __post_init__(self) -> None:
        utc(self, ("issued_at",))
        require(self.to_profile_id != self.profile_id, "cannot transfer access to the same profile")


class RestorePurchases(
    CommandBase, tag="restore_purchases", frozen=True, kw_only=True, omit_defaults=True
):
    """The profile restored these store chains (its device's store account owns them)."""

    chain_keys: tuple[str, ...]

    def __post_init__(self) -> None:
        utc(self, ("issued_at",))
        require(len(self.chain_keys) > 0, "chain_keys must name at least one chain")


class DeleteProfile(
    CommandBase, tag="delete_profile", frozen=True, kw_only=True, omit_defaults=True
):
    pass


class RecordEmailEvent(
    CommandBase, tag="record_email_event", frozen=True, kw_only=True, omit_defaults=True
):
    email_id: NonEmpty
    campaign_id: str | None = None
    event: EmailEventKind
    occurred_at: Instant

    def __post_init__(self) -> None:
        utc(self, ("issued_at", "occurred_at"))


class Unsubscribe(CommandBase, tag="unsubscribe", frozen=True, kw_only=True, omit_defaults=True):
    pass


Command = (
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
    | Unsubscribe
)
