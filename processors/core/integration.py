"""Integration events: a profile event with the profile as it stood when it was emitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from processors.core.config import FoldConfig
from processors.core.view import related_chains, revenue
from schemas.integration import EventProperties, IntegrationEvent, SharingProfile
from schemas.outputs import ProfileEvent
from schemas.profile import AttributeValue, ProfileFields
from schemas.state import ProfileState
from schemas.views import ProfileView


@dataclass(frozen=True, slots=True)
class Context:
    """What an integration event shows of its profile, besides the event itself."""

    customer_user_id: str | None
    fields: ProfileFields
    created_at: datetime | None
    custom_attributes: dict[str, AttributeValue]
    total_revenue_usd: Decimal
    has_access: bool
    # Other profiles holding access through the same purchases, parents first.
    sharing: tuple[UUID, ...]

    @classmethod
    def of_view(cls, view: ProfileView) -> Context:
        links = (*view.parents, *view.inheritors)
        return cls(
            customer_user_id=view.customer_user_id,
            fields=view.fields,
            created_at=view.created_at,
            custom_attributes=view.custom_attributes,
            total_revenue_usd=view.revenue.total_revenue_usd,
            has_access=any(level.is_active for level in view.access_levels),
            sharing=_others(view.profile_id, [link.profile_id for link in links]),
        )


def context(state: ProfileState, config: FoldConfig) -> Context:
    """The profile as of its last evaluation, as `profile_view` would show it then, reading
    only what events show: its access levels are the ones it last told."""
    at = state.as_of
    assert at is not None, "a profile that emitted events has been evaluated"
    me = state.profile_id
    parents: list[UUID] = []
    inheritors: list[UUID] = []
    for r in related_chains(state):
        if r.is_parent:
            inheritors += r.chain.holders
        elif r.chain.parent is not None:
            parents.append(r.chain.parent)
    return Context(
        customer_user_id=state.customer_user_id,
        fields=state.fields,
        created_at=state.created_at,
        custom_attributes=state.custom_attributes,
        total_revenue_usd=revenue(state, at).total_revenue_usd,
        has_access=any(level.is_active for level in state.levels.values()),
        sharing=_others(me, [*parents, *inheritors]),
    )


def _others(me: UUID, profiles: list[UUID]) -> tuple[UUID, ...]:
    return tuple(dict.fromkeys(p for p in profiles if p != me))


def envelope(event: ProfileEvent, profile: Context) -> IntegrationEvent:
    """The Adapty-shaped envelope of `event`, with `profile` as it stood right after it."""
    fields = profile.fields
    meta = fields.installation_meta
    return IntegrationEvent(
        profile_event_id=event.profile_event_id,
        event_type=event.event_type,
        event_datetime=event.event_datetime,
        profile_id=event.profile_id,
        customer_user_id=profile.customer_user_id,
        email=fields.email,
        idfv=meta.idfv if meta else None,
        idfa=meta.idfa if meta else None,
        advertising_id=meta.advertising_id if meta else None,
        profile_install_datetime=profile.created_at,
        event_properties=EventProperties(
            profile_event_id=event.profile_event_id,
            profile_id=event.profile_id,
            event_datetime=event.event_datetime,
            is_future_dated=event.is_future_dated,
            store=event.store,
            environment=event.environment,
            vendor_product_id=event.product_id,
            transaction_id=event.transaction_id,
            original_transaction_id=event.original_transaction_id,
            price_local=event.price_local,
            currency=event.currency,
            price_usd=event.price_usd,
            proceeds_usd=event.proceeds_usd,
            rate_after_first_year=event.rate_after_first_year,
            subscription_expires_at=event.expires_at,
            cancellation_reason=event.cancellation_reason,
            profile_country=fields.ip_country,
            store_country=fields.store_country,
            profile_total_revenue_usd=profile.total_revenue_usd,
            profile_has_access_level=profile.has_access,
            access_level=event.access_level,
            detail=event.detail,
        ),
        profiles_sharing_access_level=tuple(SharingProfile(profile_id=p) for p in profile.sharing),
        user_attributes=profile.custom_attributes,
    )


def published(
    state: ProfileState, events: tuple[ProfileEvent, ...], config: FoldConfig
) -> list[IntegrationEvent]:
    """A fold step's events as integrations receive them: with the profile it left."""
    if not events or state.as_of is None:
        return []
    profile = context(state, config)
    return [envelope(event, profile) for event in events]
