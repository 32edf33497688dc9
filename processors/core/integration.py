"""Integration events: a profile event with the profile as it stood when it was emitted."""

from __future__ import annotations

from schemas.integration import EventProperties, IntegrationEvent, SharingProfile
from schemas.outputs import ProfileEvent
from schemas.views import ProfileView


def envelope(event: ProfileEvent, view: ProfileView) -> IntegrationEvent:
    """The Adapty-shaped envelope of `event`, with `view` the profile right after it."""
    fields = view.fields
    meta = fields.installation_meta
    sharing: dict[object, SharingProfile] = {}
    for link in (*view.parents, *view.inheritors):
        if link.profile_id != view.profile_id:
            sharing.setdefault(link.profile_id, SharingProfile(profile_id=link.profile_id))
    return IntegrationEvent(
        profile_event_id=event.profile_event_id,
        event_type=event.event_type,
        event_datetime=event.event_datetime,
        profile_id=event.profile_id,
        customer_user_id=view.customer_user_id,
        email=fields.email,
        idfv=meta.idfv if meta else None,
        idfa=meta.idfa if meta else None,
        advertising_id=meta.advertising_id if meta else None,
        profile_install_datetime=view.created_at,
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
            profile_total_revenue_usd=view.revenue.total_revenue_usd,
            profile_has_access_level=any(level.is_active for level in view.access_levels),
            access_level=event.access_level,
            detail=event.detail,
        ),
        profiles_sharing_access_level=tuple(sharing.values()),
        user_attributes=view.custom_attributes,
    )
