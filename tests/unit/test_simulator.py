"""The simulator: the same plan under a seed, the mix it promises, and traffic that
subledger's own ingress verifies and its normalizers read."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from ingress.app import GooglePlay, Ingress, create_app
from ingress.apple import AppleVerifier
from ingress.google_play import SharedSecretAuth
from ingress.stripe_webhook import StripeApi, StripeVerifier
from processors.normalize.money import Rates
from processors.stream.processor import NORMALIZERS
from runtime.broker import free_port
from runtime.catalog import load_catalog
from schemas.enums import EventType, Store
from schemas.raw import RawNotification
from simulator.keys import DevKeys
from simulator.plan import (
    APP_APPLE_ID,
    BUNDLE,
    PACKAGE,
    PRODUCTS,
    ZERO_DECIMAL,
    Step,
    plan,
    profile_id,
)
from simulator.run import Simulator, StoreApis
from tests.unit.test_ingress_app_store import MemoryPublisher

START = datetime(2026, 11, 30, 12, tzinfo=UTC)
E = EventType


def test_a_seed_plans_the_same_traffic_and_another_seed_other_traffic() -> None:
    assert plan(40, 7, START) == plan(40, 7, START)
    assert plan(40, 7, START) != plan(40, 8, START)
    assert profile_id(7, 3) == profile_id(7, 3) != profile_id(8, 3)


def test_the_plan_holds_the_mix_stores_send() -> None:
    steps = plan(400, 1, START)
    channels = Counter(s.channel for s in steps)
    assert set(channels) == {"api", "app_store", "google_play", "stripe"}
    what = Counter(s.what for s in steps)
    for expected in (
        "SUBSCRIBED/INITIAL_BUY",
        "DID_RENEW",
        "DID_RENEW/BILLING_RECOVERY",
        "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_DISABLED",
        "DID_CHANGE_RENEWAL_STATUS/AUTO_RENEW_ENABLED",
        "DID_FAIL_TO_RENEW/GRACE_PERIOD",
        "DID_FAIL_TO_RENEW",
        "REFUND",
        "DID_CHANGE_RENEWAL_PREF/DOWNGRADE",
        "ONE_TIME_CHARGE",
        "invoice.paid",
        "invoice.payment_failed",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "SUBSCRIPTION_4",
        "SUBSCRIPTION_10",
        "ONE_TIME_PRODUCT_PURCHASED",
        "create_profile",
        "email_event",
        "restore",
        "app_open",
        "charge.refunded",
    ):
        assert what[expected] > 0, expected
    store = [s for s in steps if s.channel != "api"]
    duplicates = [s for s in store if s.duplicate]
    assert 0.01 < len(duplicates) / len(store) < 0.06
    assert all(replace_flag(d) in store for d in duplicates)
    out_of_order = sum(1 for a, b in pairwise(store) if b.at < a.at)
    assert out_of_order > 0
    now = int(START.timestamp() * 1000)
    ahead = [
        s
        for s in steps
        if s.channel == "app_store" and s.body["data"]["transaction"]["purchaseDate"] > now
    ]
    assert ahead, "renewals dated ahead"
    # Everything is sent by now: what is dated ahead says so inside, as early renewals do.
    assert all(s.at <= now for s in steps)
    assert {s.what for s in ahead} == {"DID_RENEW"}
    trials = [s for s in steps if s.channel == "app_store" and "offerType" in str(s.body)]
    assert trials


def replace_flag(step: Step) -> Step:
    return Step(**{**step.__dict__, "duplicate": False})


class StandInClient:
    """The Play client ingress uses, reading the stand-in's memory (HTTP in integration)."""

    def __init__(self, play: StoreApis) -> None:
        self.play = play

    def subscription(self, package: str, token: str) -> dict[str, Any]:
        return self.play.subscriptions[token]

    def product(self, package: str, token: str) -> dict[str, Any]:
        return self.play.products[token]


async def test_every_notification_verifies_at_ingress_and_normalizes(tmp_path: Path) -> None:
    keys = DevKeys.load_or_create(tmp_path / "dev")
    play = StoreApis()
    publisher = MemoryPublisher()
    ingress = Ingress(
        catalog=load_catalog(),
        publisher=publisher,
        apple=AppleVerifier([keys.authority.root_der], "Production", BUNDLE, APP_APPLE_ID),
        stripe=StripeVerifier([keys.stripe_secret]),
        google=GooglePlay(PACKAGE, SharedSecretAuth(keys.google_push_secret), StandInClient(play)),
    )
    transport = httpx.ASGITransport(app=create_app(ingress))
    steps = [s for s in plan(300, 3, START) if s.channel != "api"]
    simulator = Simulator("http://ingress", keys, "k", play, rate=10_000, transport=transport)
    # A refunded charge names its invoice by id: ingress asks the Stripe API (the stand-in,
    # over HTTP, through the stripe library) and keeps the invoice beside the event.
    async with play.serving(free_port()) as endpoint:
        ingress.stripe_api = StripeApi("sk_test_simulator", endpoint)
        outcome = await simulator.run(steps)
    assert outcome.refused == 0, outcome.failures
    assert outcome.sent == len(steps) == len(publisher.records)

    rates = Rates.load()
    planned = {str(profile_id(3, n)) for n in range(300)}
    kinds: Counter[EventType] = Counter()
    # Every price arrives as the plan set it, whatever the store's unit (Apple's
    # milliunits, Google's units and nanos, Stripe's minor units; yen has no minor unit).
    prices: dict[str, set[Decimal]] = {}
    for product in PRODUCTS:
        for currency, minor in product.prices.items():
            prices.setdefault(currency, {Decimal(0)}).add(_major(minor, currency))
    for currency in prices:
        prices[currency].add(_major(700 if currency in ZERO_DECIMAL else 499, currency))
    stripe_refunds = 0
    for _, _, value in publisher.records:
        raw = RawNotification.model_validate_json(value)
        for event in NORMALIZERS[raw.store](raw, rates):
            kinds[event.event_type] += 1
            if raw.store is Store.STRIPE and event.patch is not None:
                assert raw.fetched is not None
                stripe_refunds += 1
            assert event.profile is None or str(event.profile.profile_id) in planned
            tx = event.transaction
            if tx is not None:
                assert tx.price_local in prices[tx.currency], (raw.store, tx)
    for expected in (
        E.SUBSCRIPTION_STARTED,
        E.TRIAL_STARTED,
        E.SUBSCRIPTION_RENEWED,
        E.SUBSCRIPTION_RENEWAL_CANCELLED,
        E.BILLING_ISSUE_DETECTED,
        E.SUBSCRIPTION_EXPIRED,
    ):
        assert kinds[expected] > 0, (expected, kinds)
    assert stripe_refunds > 0
    assert stripe_refunds == sum(1 for s in steps if s.what == "charge.refunded")


async def test_the_stripe_api_finds_the_invoice_a_payment_intent_paid() -> None:
    """From API version 2025-03-31 a charge names no invoice: its payment intent's invoice
    payment does (`GET /v1/invoice_payments?payment[payment_intent]=`)."""
    apis = StoreApis()
    apis.saw({"data": {"object": {"id": "in_7", "object": "invoice", "payment_intent": "pi_7"}}})
    async with apis.serving(free_port()) as endpoint:
        api = StripeApi("sk_test_simulator", endpoint)
        found = await asyncio.to_thread(api.invoice_paid_by, "pi_7")
        missing = await asyncio.to_thread(api.invoice_paid_by, "pi_8")
        by_id = await asyncio.to_thread(api.invoice, "in_7")
        unknown = await asyncio.to_thread(api.invoice, "in_8")
    assert (found or {}).get("id") == (by_id or {}).get("id") == "in_7"
    assert (missing, unknown) == (None, None)


async def test_the_real_play_client_reads_the_stand_in_from_many_threads_at_once() -> None:
    """google-api-python-client over HTTP, from ingress's thread pool: no shared transport."""
    from google.auth.credentials import AnonymousCredentials

    from ingress.google_play import GooglePlayClient

    play = StoreApis()
    play.subscriptions = {f"tok-{n}": {"subscriptionState": f"S{n}"} for n in range(40)}
    async with play.serving(free_port()) as endpoint:
        client = GooglePlayClient(AnonymousCredentials(), endpoint)  # type: ignore[no-untyped-call]
        try:
            answers = await asyncio.gather(
                *(asyncio.to_thread(client.subscription, PACKAGE, f"tok-{n}") for n in range(40))
            )
        finally:
            client.close()
    assert [a["subscriptionState"] for a in answers] == [f"S{n}" for n in range(40)]


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(minor) if currency in ZERO_DECIMAL else Decimal(minor) / 100


def test_app_store_prices_are_milliunits_of_any_currency() -> None:
    steps = [s for s in plan(2000, 3, START) if s.channel == "app_store"]
    by_id = {p.apple_id: p for p in PRODUCTS}
    seen: set[tuple[str, str]] = set()
    for step in steps:
        tx = step.body["data"]["transaction"]
        currency = tx["currency"]
        if tx["type"] == "Consumable":
            minor = 700 if currency in ZERO_DECIMAL else 499
        elif "offerType" in tx:
            minor = 0
        else:
            minor = by_id[tx["productId"]].prices[currency]
        assert Decimal(tx["price"]) / 1000 == _major(minor, currency), tx
        seen.add((tx["type"], currency))
    assert ("Consumable", "JPY") in seen
    assert ("Auto-Renewable Subscription", "JPY") in seen
