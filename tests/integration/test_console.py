"""The console in headless Chromium, on the whole stack: what a support person does.

Screenshots of each main page, at 1280 and 390 px wide, are kept in
`.artifacts/console/` (not committed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from runtime.broker import free_port
from tests.integration.stack import ROOT, Stack
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

KEY = "console_test_key"
AUTH = {"Authorization": f"Api-Key {KEY}"}
INSTALLATION = {"installation_meta": {"device_id": "device-1", "platform": "iOS"}}
SHOTS = ROOT / ".artifacts" / "console"
CHROMIUM = os.environ.get("SUBLEDGER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


async def _create(http: httpx.AsyncClient, customer: str, email: str) -> str:
    response = await http.post(
        "/api/v2/server-side-api/profile/",
        headers={**AUTH, "adapty-customer-user-id": customer},
        json={**INSTALLATION, "email": email},
    )
    assert response.status_code == 200, response.text
    profile: str = response.json()["data"]["profile_id"]
    return profile


async def _subscribe(http: httpx.AsyncClient, profile: str) -> None:
    response = await http.post(
        "/api/v2/server-side-api/purchase/set/transaction/",
        headers={**AUTH, "adapty-profile-id": profile},
        json={
            "purchase_type": "subscription",
            "store": "stripe",
            "store_product_id": "pro.monthly",
            "store_transaction_id": "in_console_1",
            "store_original_transaction_id": "sub_console_1",
            "price": {"country": "DE", "currency": "USD", "value": 9.99},
            "purchased_at": "2026-11-01T00:00:00Z",
            "originally_purchased_at": "2026-11-01T00:00:00Z",
            "expires_at": "2099-12-01T00:00:00Z",
            "renew_status": True,
        },
    )
    assert response.status_code == 200, response.text


class Console:
    def __init__(self, base: str, http: httpx.AsyncClient, browser: Browser) -> None:
        self.base, self.http, self.browser = base, http, browser

    async def page(self, width: int = 1280) -> Page:
        context = await self.browser.new_context(viewport={"width": width, "height": 900})
        return await context.new_page()

    async def sign_in(self, page: Page) -> None:
        await page.goto(f"{self.base}/console/sign-in")
        await page.get_by_label("API key").fill(KEY)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    async def shoot(self, page: Page, name: str) -> None:
        """A screenshot at this width and at 390 px, where nothing may overflow the page."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SHOTS / f"{name}-1280.png", full_page=True)
        await page.set_viewport_size({"width": 390, "height": 844})
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px wider than a 390px screen"
        await page.screenshot(path=SHOTS / f"{name}-390.png", full_page=True)
        await page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
async def console(stack: Stack, receiver: Receiver) -> AsyncIterator[Console]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    port = free_port()
    levels = {"access_levels": '["premium", "vip"]'}
    stack.start_ingress(port, api_keys=f'["{KEY}"]', read_your_writes_seconds="20", **levels)
    stack.start_worker(**levels)
    stack.start_projector()
    stack.start_dispatcher()
    base = f"http://127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield Console(base, http, browser)
        finally:
            await browser.close()


async def test_a_support_person_works_a_profile_in_the_console(
    console: Console, receiver: Receiver
) -> None:
    http = console.http
    hooked = await http.post("/api/v1/webhooks/endpoints", json={"url": receiver.url}, headers=AUTH)
    assert hooked.status_code == 201, hooked.text
    ann = await _create(http, "ann-1", "ann@example.com")
    bob = await _create(http, "bob-2", "bob@example.com")
    await _subscribe(http, ann)

    page = await console.page()
    # No session: every page answers with the sign-in page, which leads back.
    await page.goto(f"{console.base}/console/profiles?q=ann%40example.com")
    assert "/console/sign-in" in page.url
    await page.get_by_label("API key").fill("not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not one of this service's keys")
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Profiles")).to_be_visible()
    await expect(page.locator("#count")).to_have_text("1 profile")
    await console.shoot(page, "profiles")

    # Open Ann from the search result.
    await page.get_by_role("link", name=ann).click()
    await expect(page.get_by_role("heading", name="ann-1")).to_be_visible()
    await expect(page.locator("#total-spent")).to_have_text("$9.99")

    # Grant until a date, then try a shorter one.
    until = (datetime.now(UTC) + timedelta(days=400)).date()
    grant = page.locator("#grant")
    await grant.get_by_label("Access level").fill("vip")
    await grant.get_by_label("Until (UTC)").fill(until.isoformat())
    await grant.get_by_role("button", name="Grant").click()
    await expect(page.get_by_role("status")).to_contain_text("Access granted")
    vip = page.locator('tr[data-access-level="vip"]')
    await expect(vip.locator(".until")).to_have_text(until.isoformat())
    shorter = until - timedelta(days=30)
    await grant.get_by_label("Access level").fill("vip")
    await grant.get_by_label("Until (UTC)").fill(shorter.isoformat())
    await grant.get_by_role("button", name="Grant").click()
    await expect(page.locator("#error-grant")).to_contain_text("can't be decreased")
    await expect(vip.locator(".until")).to_have_text(until.isoformat())

    # A note in Markdown: rendered, and the HTML it holds shown as text, never run.
    await page.get_by_label("New note (Markdown)").fill("**VIP** <script>alert(1)</script>")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.get_by_role("status")).to_contain_text("Note added")
    note = page.locator("#notes .note").first
    await expect(note.locator("strong")).to_have_text("VIP")
    await expect(note).to_contain_text("<script>alert(1)</script>")
    assert await note.locator("script").count() == 0
    await note.get_by_text("Edit").click()
    await note.get_by_label("Note (Markdown)").fill("Called, happy now")
    await note.get_by_role("button", name="Save note").click()
    await expect(page.get_by_role("status")).to_contain_text("Note saved")
    await expect(page.locator("#notes .note").first).to_contain_text("Called, happy now")

    # A custom attribute: set, refused inline when bad, removed.
    adding = page.locator("#add-attribute")
    await adding.get_by_label("Key").fill("plan")
    await adding.get_by_label("Value").fill("gold")
    await adding.get_by_role("button", name="Add").click()
    await expect(page.locator('tr[data-attribute="plan"] input[name="value"]')).to_have_value(
        "gold"
    )
    await adding.get_by_label("Key").fill("not a key!")
    await adding.get_by_label("Value").fill("x")
    await adding.get_by_role("button", name="Add").click()
    await expect(page.locator("#error-attributes")).to_contain_text("must be 1-30 letters")
    await page.locator('tr[data-attribute="plan"]').get_by_role("button", name="Remove").click()
    await expect(page.get_by_role("status")).to_contain_text("Attribute removed")
    assert await page.locator('tr[data-attribute="plan"]').count() == 0
    await console.shoot(page, "profile")

    # The journey: an event opens to its payload and the webhook deliveries it caused.
    started = page.locator('#journey li[data-event="subscription_started"]')
    await started.locator("summary").click()
    await expect(started.locator(".payload")).to_contain_text('"vendor_product_id": "pro.monthly"')
    for _ in range(100):  # the dispatcher delivers within moments
        if any(True for _ in receiver.got):
            break
        await asyncio.sleep(0.2)
    await page.reload()
    started = page.locator('#journey li[data-event="subscription_started"]')
    await started.locator("summary").click()
    delivery = started.locator("tr[data-delivery]")
    await expect(delivery.locator(".status")).to_have_text("succeeded", timeout=20_000)
    delivered = len(receiver.got)
    await delivery.get_by_role("button", name="Redeliver").click()
    await expect(page.get_by_role("status")).to_contain_text("Delivery queued again")
    for _ in range(100):
        if len(receiver.got) > delivered:
            break
        await asyncio.sleep(0.2)
    assert len(receiver.got) > delivered, "the redelivered webhook did not arrive"

    # The webhooks page lists the endpoint; it can be disabled and enabled again.
    await page.get_by_role("link", name="Webhooks").click()
    endpoint = page.locator("#endpoints tr[data-endpoint]")
    await expect(endpoint).to_contain_text(receiver.url)
    await expect(page.locator("#deliveries")).to_contain_text("subscription_started")
    await endpoint.get_by_role("button", name="Disable").click()
    await expect(page.get_by_role("status")).to_contain_text("Endpoint disabled")
    await expect(endpoint).to_contain_text("disabled")
    await endpoint.get_by_role("button", name="Enable").click()
    await expect(page.get_by_role("status")).to_contain_text("Endpoint enabled")
    await console.shoot(page, "webhooks")
    await page.goto(f"{console.base}/console/profiles/{ann}")

    # Transfer Ann's access to Bob, found by his email.
    await page.get_by_label("Transfer access to").fill("bob@example.com")
    await page.get_by_role("button", name="Find profile").click()
    await expect(page.get_by_role("heading", name="Transfer access")).to_be_visible()
    await page.get_by_role("button", name="Transfer to this profile").click()
    await expect(page.get_by_role("status")).to_contain_text("Access transferred")
    # Bob's profile follows through the chain's fold, a moment after Ann's.
    for _ in range(100):
        moved = (await http.get(f"/api/v1/profiles/{bob}", headers=AUTH)).json()["data"]
        if moved["subscriptions"]:
            break
        await asyncio.sleep(0.1)
    assert [s["store_transaction_id"] for s in moved["subscriptions"]] == ["in_console_1"]

    # The overview and segments pages render.
    await page.goto(f"{console.base}/console/overview")
    await expect(page.locator("svg.chart").first).to_be_visible()
    await console.shoot(page, "overview")
    await page.goto(f"{console.base}/console/profiles?subscription_state=subscribed")
    await page.get_by_text("Save these filters as a segment").click()
    await page.get_by_label("Name").fill("Paying")
    await page.get_by_role("button", name="Save segment").click()
    await expect(page.get_by_role("status")).to_contain_text("Segment saved")
    await expect(page.locator("#segments")).to_contain_text("Paying")
    await console.shoot(page, "segments")

    # Delete Ann: a wrong confirmation changes nothing, the id itself erases her.
    await page.goto(f"{console.base}/console/profiles/{ann}")
    await page.get_by_label("Type the profile id").fill("ann-1")
    await page.get_by_role("button", name="Delete profile").click()
    await expect(page.locator("#error-delete")).to_contain_text("type the profile id")
    await page.get_by_label("Type the profile id").fill(ann)
    await page.get_by_role("button", name="Delete profile").click()
    await expect(page.get_by_role("status")).to_contain_text("Profile deleted")
    gone = await http.get(f"/api/v1/profiles/{ann}", headers=AUTH)
    assert gone.status_code == 404


async def test_the_console_refuses_requests_without_a_session_or_a_token(
    console: Console,
) -> None:
    profile = await _create(console.http, "carol-3", "carol@example.com")
    # Without a session: pages lead to sign-in, forms change nothing.
    bare = await console.http.get("/console/profiles", follow_redirects=False)
    assert bare.status_code == 303
    assert bare.headers["location"].startswith("/console/sign-in?next=")
    posted = await console.http.post(
        f"/console/profiles/{profile}/notes", data={"text": "x"}, follow_redirects=False
    )
    assert posted.status_code == 401

    page = await console.page()
    await console.sign_in(page)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert "subledger_console" in cookies
    (session,) = [c for c in await page.context.cookies() if c["name"] == "subledger_console"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    # Signed in, but a form without its token (another site's, say) is refused.
    forged: Any = await page.request.post(
        f"{console.base}/console/profiles/{profile}/notes", form={"text": "forged"}
    )
    assert forged.status == 403
    assert "was refused" in await forged.text()
    notes = (await console.http.get(f"/api/v1/profiles/{profile}", headers=AUTH)).json()["data"]
    assert notes["notes"] == []
    # Signing out ends the session.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_contain_text("Signed out")
    await page.goto(f"{console.base}/console/overview")
    assert "/console/sign-in" in page.url
