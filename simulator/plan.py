"""What the simulator sends, planned in full before anything is sent; the same under a seed.

Each profile lives a store-agnostic life (`life`): a start, with or without a free trial;
a renewal each period up to the moment the run starts; then perhaps a cancellation (some
reactivated), a billing issue (with or without grace, recovered or not), a refund, a
product change, a pause, a renewal dated a few minutes ahead (held until due), one-time
purchases, email engagement, a restore by another profile. A renderer per store turns
the life into the notifications that store sends (`apple`, `stripe`, `google`), dated
when they happened. The profiles' steps, merged in time order, are then shuffled a
little and some repeated, as stores deliver them.

`plan(profiles, seed, start)` depends on nothing else: profile n's life comes from
`Random(f"{seed}:{n}")`, so the first profiles are the same whatever the count.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

DAY = 86_400_000
HOUR = 3_600_000
MINUTE = 60_000

# Bundle, package and app the dev stack is configured for.
BUNDLE = "com.example.subledger"
APP_APPLE_ID = 1_234_567_890
PACKAGE = "com.example.subledger"


@dataclass(frozen=True)
class Product:
    apple_id: str
    base_plan: str
    period_days: int
    # Price in the currency's minor units per currency.
    prices: dict[str, int]


PRODUCTS = (
    Product("premium.weekly", "weekly", 7, {"USD": 299, "EUR": 299, "GBP": 249, "JPY": 450}),
    Product("premium.monthly", "monthly", 30, {"USD": 999, "EUR": 999, "GBP": 899, "JPY": 1500}),
    Product("premium.yearly", "yearly", 365, {"USD": 5999, "EUR": 5999, "GBP": 4999, "JPY": 9000}),
)
COUNTRIES = {"USD": "USA", "EUR": "DEU", "GBP": "GBR", "JPY": "JPN"}
PLATFORMS = {"app_store": "iOS", "google_play": "Android", "stripe": "web"}
ZERO_DECIMAL = frozenset({"JPY"})

# Shares of the traffic, per profile or per step.
STORES = (("app_store", 0.45), ("google_play", 0.25), ("stripe", 0.30))
REORDERED = 0.04
DUPLICATED = 0.03


@dataclass(frozen=True)
class Moment:
    """One thing that happened to a subscription (or a purchase), store-agnostic."""

    at: int  # epoch milliseconds
    kind: str
    period: int = 0  # which paid or trial period
    starts: int = 0
    ends: int = 0
    product: Product = PRODUCTS[1]
    trial: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Step:
    """One request to send: a store notification, or a server-side API call."""

    at: int  # when it happened (epoch ms): the merge order
    profile: int
    channel: str  # app_store | google_play | stripe | api
    what: str  # the notification type, or the API call
    body: dict[str, Any]
    duplicate: bool = False


@dataclass
class Life:
    number: int
    profile_id: uuid.UUID
    store: str
    currency: str
    moments: list[Moment] = field(default_factory=list)
    api: list[Step] = field(default_factory=list)


def profile_id(seed: int, number: int) -> uuid.UUID:
    return uuid.UUID(int=random.Random(f"{seed}:{number}:id").getrandbits(128), version=4)


def life(seed: int, number: int, start: int, profiles: int) -> Life:
    """Profile `number`'s history up to `start` (epoch ms), and a little beyond."""
    rng = random.Random(f"{seed}:{number}")
    store = rng.choices([s for s, _ in STORES], [w for _, w in STORES])[0]
    currency = rng.choices(["USD", "EUR", "GBP", "JPY"], [0.55, 0.2, 0.15, 0.1])[0]
    me = Life(number, profile_id(seed, number), store, currency)
    product = rng.choices(PRODUCTS, [0.15, 0.6, 0.25])[0]
    began = start - rng.randint(2 * DAY, 150 * DAY)
    me.api.append(
        Step(
            began - HOUR,
            number,
            "api",
            "create_profile",
            {
                "profile_id": str(me.profile_id),
                "customer_user_id": f"sim-{seed}-{number}",
                "email": f"user{number}@example.com",
                "first_name": rng.choice(["Ada", "Ben", "Chloe", "Dev", "Emi", "Femi", "Gus"]),
                "ip_country": COUNTRIES[currency][:2],
                "installation_meta": {
                    "device_id": f"device-{seed}-{number}",
                    "platform": PLATFORMS[store],
                },
            },
        )
    )
    add = me.moments.append
    period, at = 0, began
    if rng.random() < 0.35:
        trial_end = at + 7 * DAY
        add(Moment(at, "start", 0, at, trial_end, product, trial=True))
        if rng.random() < 0.4:
            cancelled = min(at + rng.randint(HOUR, 6 * DAY), start - MINUTE)
            add(Moment(cancelled, "cancel", 0, at, trial_end, product, True))
            if trial_end < start:
                add(Moment(trial_end, "expire", 0, at, trial_end, product, True, "voluntary"))
            return _extras(rng, me, seed, start, profiles, began)
        if trial_end >= start:
            return _extras(rng, me, seed, start, profiles, began)  # still in its trial
        at, period = trial_end, 1
        add(Moment(at, "renew", 1, at, at + product.period_days * DAY, product))
    else:
        add(Moment(at, "start", 0, at, at + product.period_days * DAY, product))
    length = product.period_days * DAY
    while at + length < start:
        at += length
        period += 1
        add(Moment(at, "renew", period, at, at + length, product))
    _ending(rng, me, product, period, at, start)
    return _extras(rng, me, seed, start, profiles, began)


def _ending(rng: random.Random, me: Life, product: Product, period: int, at: int, now: int) -> None:
    """How the current period goes: most renew on; the rest meet one of the store's turns."""
    add = me.moments.append
    length = product.period_days * DAY
    ends = at + length
    roll = rng.random()
    within = at + rng.randint(0, max(now - at - MINUTE, 0))
    if roll < 0.14:
        add(Moment(within, "cancel", period, at, ends, product))
        if rng.random() < 0.35:
            add(
                Moment(
                    min(within + rng.randint(MINUTE, max(now - within, MINUTE)), now),
                    "reactivate",
                    period,
                    at,
                    ends,
                    product,
                )
            )
    elif roll < 0.24 and period > 0:
        # The last renewal failed: billing retry, with a grace period for some.
        grace = rng.random() < 0.5
        me.moments.pop()  # that renewal did not happen
        add(
            Moment(
                at,
                "billing_issue",
                period,
                at,
                at + 16 * DAY,
                product,
                detail="grace" if grace else "",
            )
        )
        if rng.random() < 0.5 and now - at > HOUR:
            fixed = at + rng.randint(HOUR, min(5 * DAY, now - at))
            add(Moment(fixed, "recover", period, fixed, fixed + length, product))
        elif grace and at + 16 * DAY < now:
            add(Moment(at + 16 * DAY, "grace_expired", period, at, at + 16 * DAY, product))
    elif roll < 0.29:
        add(Moment(within, "refund", period, at, ends, product))
    elif roll < 0.34:
        other = rng.choice([p for p in PRODUCTS if p != product])
        add(Moment(within, "change_product", period, at, ends, product, detail=other.apple_id))
    elif roll < 0.38 and me.store != "app_store":
        add(Moment(within, "pause", period, at, ends, product))
    elif roll < 0.44:
        # Sent now, dated a few minutes ahead: subledger holds it until it is due.
        due = now + rng.randint(2, 10) * MINUTE
        add(Moment(now, "renew", period + 1, due, due + length, product, detail="future"))


def _extras(rng: random.Random, me: Life, seed: int, now: int, profiles: int, began: int) -> Life:
    """One-time purchases, email engagement, a restore of this chain by someone else, and
    the app opened again."""
    if rng.random() < 0.1:
        at = began + rng.randint(0, max(now - began - MINUTE, 0))
        me.moments.append(Moment(at, "one_time", detail=f"coins.{rng.choice([100, 500])}"))
    if rng.random() < 0.3:
        at = began + rng.randint(0, max(now - began - DAY, 0))
        email = f"em-{seed}-{me.number}"
        for event, share in (("sent", 1.0), ("delivered", 0.95), ("opened", 0.5), ("clicked", 0.3)):
            if rng.random() > share:
                break
            at += rng.randint(MINUTE, 6 * HOUR)
            body: dict[str, Any] = {
                "profile_id": str(me.profile_id),
                "email_id": email,
                "campaign_id": "welcome",
                "event": event,
                "occurred_at": iso(min(at, now)),
            }
            me.api.append(Step(min(at, now), me.number, "api", "email_event", body))
    if profiles > 1 and me.store != "stripe" and rng.random() < 0.03:
        # Someone else restores this profile's purchases on their device.
        other = rng.randrange(profiles - 1)
        other += other >= me.number
        body = {
            "store": "play_store" if me.store == "google_play" else me.store,
            "store_original_transaction_ids": [chain_id(seed, me)],
            "profile_id": str(profile_id(seed, other)),
        }
        me.api.append(Step(now - rng.randint(MINUTE, HOUR), other, "api", "restore", body))
    if rng.random() < 0.6:
        # The app opened again lately: its SDK updates the profile (its last seen).
        opened = max(now - rng.randint(MINUTE, 3 * DAY), began)
        meta = {"device_id": f"device-{seed}-{me.number}", "platform": PLATFORMS[me.store]}
        body = {"profile_id": str(me.profile_id), "installation_meta": meta}
        me.api.append(Step(opened, me.number, "api", "app_open", body))
    return me


def chain_id(seed: int, me: Life) -> str:
    """The subscription's id at its store: original transaction id, token, or sub_ id."""
    if me.store == "app_store":
        return str(2_000_000_000_000_000 + seed % 10_000 * 10**9 + me.number * 100)
    if me.store == "google_play":
        return f"sim-{seed}-{me.number}"
    return f"sub_sim{seed}x{me.number}"


def iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat().replace("+00:00", "Z")


def plan(profiles: int, seed: int, start: datetime) -> list[Step]:
    """Every step, in sending order."""
    from simulator import render

    now = int(start.timestamp() * 1000)
    steps: list[Step] = []
    for number in range(profiles):
        me = life(seed, number, now, profiles)
        steps += me.api
        steps += render.store_steps(seed, me)
    steps.sort(key=lambda s: (s.at, s.profile, s.channel != "api"))
    return _delivered(steps, random.Random(f"{seed}:delivery"))


def _delivered(steps: list[Step], rng: random.Random) -> list[Step]:
    """As stores deliver: a few out of order, a few twice (the repeat a little later)."""
    out = list(steps)
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if a.channel != "api" and b.channel != "api" and rng.random() < REORDERED:
            out[i], out[i + 1] = b, a
    later: dict[int, list[Step]] = {}
    for i, step in enumerate(out):
        if step.channel != "api" and rng.random() < DUPLICATED:
            where = min(i + rng.randint(1, 30), len(out) - 1)
            later.setdefault(where, []).append(replace(step, duplicate=True))
    delivered: list[Step] = []
    for i, step in enumerate(out):
        delivered.append(step)
        delivered += later.get(i, [])
    return delivered
