"""Read-model rows from topic records: pure, one function per table.

Records arrive as JSON (a ProfileView on `profile.snapshots`, a ProfileEvent on
`profile.events`, an Outcome on `profile.outcomes`). They are read as plain dicts, not
validated models: the folds wrote them, and this is the projector's hot path. Each row
is a tuple in its table's column order, ready for COPY; values stay in their JSON text
form (timestamps, exact decimals), which PostgreSQL parses on COPY. Each document itself
(snapshot, event, outcome) is stored as the text it was published as.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from projections import tables

Row = tuple[Any, ...]
Record = dict[str, Any]


def _columns(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns)


def _row(table: Table, values: dict[str, Any]) -> Row:
    return tuple(values.get(name) for name in COLUMNS[table.name])


COLUMNS = {table.name: _columns(table) for table in tables.metadata.sorted_tables}


def _latest(*instants: str | None) -> str | None:
    present = [datetime.fromisoformat(i) for i in instants if i]
    return max(present).isoformat() if present else None


def profile_row(view: Record, raw: str) -> Row:
    fields = view.get("fields") or {}
    meta = fields.get("installation_meta") or {}
    revenue = view.get("revenue") or {}
    email = view.get("email") or {}
    subscriptions = view.get("subscriptions") or ()
    purchases = view.get("non_subscriptions") or ()
    bought = [*subscriptions, *purchases]
    stores = {p["store"] for p in bought}
    if fields.get("store"):
        stores.add(fields["store"])
    return _row(
        tables.profiles,
        {
            **{k: fields.get(k) for k in ("email", "phone_number", "first_name", "last_name")},
            **{k: fields.get(k) for k in ("gender", "birthday", "store_country")},
            "profile_id": view["profile_id"],
            "customer_user_id": view.get("customer_user_id"),
            "country": fields.get("ip_country"),
            "platform": meta.get("platform"),
            "os": meta.get("os"),
            "device": meta.get("device"),
            "created_at": view.get("created_at"),
            "last_seen_at": view.get("last_seen_at"),
            "last_activity_at": _latest(
                view.get("created_at"),
                view.get("last_seen_at"),
                *(p["purchased_at"] for p in bought),
            ),
            "subscription_state": view["subscription_state"],
            "purchase_status": view["purchase_status"],
            "stores": sorted(stores),
            "environments": sorted({p["environment"] for p in bought}),
            "active_access_levels": sorted(
                a["access_level_id"] for a in view.get("access_levels") or () if a["is_active"]
            ),
            **{
                k: revenue.get(k, "0")
                for k in (
                    "total_revenue_usd",
                    "total_proceeds_usd",
                    "sandbox_total_revenue_usd",
                    "sandbox_total_proceeds_usd",
                )
            },
            "emails_sent": email.get("sent", 0),
            "emails_delivered": email.get("delivered", 0),
            "emails_opened": email.get("opened", 0),
            "emails_clicked": email.get("clicked", 0),
            "email_open_rate": email.get("open_rate"),
            "email_attributed_revenue_usd": email.get("attributed_revenue_usd", "0"),
            "email_subscribed": view.get("email_subscribed", True),
            "next_wakeup_at": view.get("next_wakeup_at"),
            "as_of": view["as_of"],
            "version": view["version"],
            "view": raw,
        },
    )


def _access_levels(view: Record) -> Iterator[Row]:
    for level in view.get("access_levels") or ():
        yield _row(tables.access_levels, {**level, "profile_id": view["profile_id"]})


def _subscriptions(view: Record) -> Iterator[Row]:
    for subscription in view.get("subscriptions") or ():
        yield _row(tables.subscriptions, {**subscription, "profile_id": view["profile_id"]})


def _non_subscriptions(view: Record) -> Iterator[Row]:
    for purchase in view.get("non_subscriptions") or ():
        yield _row(tables.non_subscriptions, {**purchase, "profile_id": view["profile_id"]})


def _custom_attributes(view: Record) -> Iterator[Row]:
    for key, value in (view.get("custom_attributes") or {}).items():
        text, number = (value, None) if isinstance(value, str) else (None, value)
        yield (view["profile_id"], key, text, number)


def _notes(view: Record) -> Iterator[Row]:
    for note in view.get("notes") or ():
        yield _row(tables.notes, {**note, "profile_id": view["profile_id"]})


CHILD_ROWS: dict[str, Callable[[Record], Iterator[Row]]] = {
    "access_levels": _access_levels,
    "subscriptions": _subscriptions,
    "non_subscriptions": _non_subscriptions,
    "custom_attributes": _custom_attributes,
    "notes": _notes,
}


def event_row(event: Record, raw: str, sequence: int) -> Row:
    """The columns of an event, taken from its JSON; `sequence` orders a profile's events."""
    p = event.get("event_properties") or {}
    values = {
        "profile_event_id": event.get("profile_event_id"),
        "profile_id": event.get("profile_id"),
        "event_type": event.get("event_type"),
        "event_datetime": event.get("event_datetime"),
        "sequence": sequence,
        "is_future_dated": bool(p.get("is_future_dated")),
        "store": p.get("store"),
        "environment": p.get("environment"),
        "transaction_id": p.get("transaction_id"),
        "product_id": p.get("vendor_product_id"),
        "price_usd": p.get("price_usd"),
        "event": raw,
    }
    return tuple(values[column] for column in COLUMNS["profile_events"])


def outcome_row(outcome: Record, raw: str, recorded_at: datetime) -> Row:
    return _row(tables.command_outcomes, {**outcome, "outcome": raw, "recorded_at": recorded_at})


@dataclass
class Batch:
    """One transaction's worth of rows, newest snapshot per profile."""

    profiles: dict[str, tuple[Record, str]] = field(default_factory=dict)
    events: list[Row] = field(default_factory=list)
    outcomes: dict[str, Row] = field(default_factory=dict)
    # (transaction id, profile id): every store id an event of the profile names.
    transaction_ids: set[Row] = field(default_factory=set)

    def add_snapshot(self, view: Record, raw: str) -> None:
        known = self.profiles.get(view["profile_id"])
        if known is None or _newer(view, known[0]):
            self.profiles[view["profile_id"]] = (view, raw)

    def add_event(self, event: Record, raw: str, sequence: int) -> None:
        self.events.append(event_row(event, raw, sequence))
        properties = event.get("event_properties") or {}
        for name in ("transaction_id", "original_transaction_id"):
            if found := properties.get(name):
                self.transaction_ids.add((found, event["profile_id"]))

    def add_outcome(self, outcome: Record, raw: str, recorded_at: datetime) -> None:
        # A rejection and an acceptance never share a command id; the first kept wins.
        self.outcomes.setdefault(outcome["command_id"], outcome_row(outcome, raw, recorded_at))

    def live(self) -> Iterator[tuple[Record, str]]:
        return (p for p in self.profiles.values() if not p[0].get("deleted"))

    def erased(self) -> list[tuple[str, int, str]]:
        return [
            (view["profile_id"], view["version"], view["as_of"])
            for view, _ in self.profiles.values()
            if view.get("deleted")
        ]

    def __len__(self) -> int:
        return len(self.profiles) + len(self.events) + len(self.outcomes)


def _newer(view: Record, than: Record) -> bool:
    return (view["version"], datetime.fromisoformat(view["as_of"])) > (
        than["version"],
        datetime.fromisoformat(than["as_of"]),
    )
