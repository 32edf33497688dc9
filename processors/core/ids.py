"""Deterministic ids: the same input always gives the same id (UUID v5)."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("5f0c2a4e-8d1b-5b7e-9a43-2f7c1d9e6b10")


def stable_id(*parts: object) -> UUID:
    return uuid5(NAMESPACE, "\x1f".join(str(part) for part in parts))


def profile_id_for_customer(customer_user_id: str) -> UUID:
    """The profile made for a customer user id that a store event names before any profile."""
    return stable_id("customer", customer_user_id)
