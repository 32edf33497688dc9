"""The console's pieces that need no browser: sessions, redirects, filters, rendering."""

from __future__ import annotations

import time

import pytest
from starlette.datastructures import QueryParams

from api.console import charts
from api.console.pages import MARKDOWN, _next, as_query, profile_params
from api.console.session import Sessions, fingerprint
from schemas.api import ProfileQuery


def test_a_session_opens_only_with_a_configured_key() -> None:
    sessions = Sessions(["key-a", "key-b"], max_age=3600)
    assert sessions.sign_in("key-c") is None
    assert sessions.sign_in(" key-a") is None
    cookie = sessions.sign_in("key-b")
    assert cookie is not None
    session = sessions.open(cookie)
    assert session is not None
    assert session.key == "key-b"
    # The cookie names the key by a fingerprint; the key itself is not in it.
    assert "key-b" not in cookie
    assert fingerprint("key-b") != "key-b"
    assert session.accepts(session.csrf)
    assert not session.accepts(None)
    assert not session.accepts(session.csrf + "x")


def test_a_tampered_expired_or_revoked_session_does_not_open() -> None:
    sessions = Sessions(["key-a"], max_age=60)
    cookie = sessions.sign_in("key-a")
    assert cookie is not None
    assert sessions.open(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert sessions.open("") is None
    assert sessions.open(None) is None
    # Another key set signs differently: removing a key ends its sessions.
    assert Sessions(["key-b"], max_age=60).open(cookie) is None
    later = Sessions(["key-a"], max_age=60)
    assert later.open(cookie) is not None
    aged = Sessions(["key-a"], max_age=1)
    old = aged.sign_in("key-a")
    time.sleep(2.1)
    assert aged.open(old) is None


def test_no_configured_key_opens_nothing() -> None:
    sessions = Sessions([], max_age=60)
    assert not sessions.configured
    assert sessions.sign_in("") is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/profiles?q=a", "/console/profiles?q=a"),
        ("https://evil.example/console/", "/console/overview"),
        ("//evil.example", "/console/overview"),
        ("/console//evil.example", "/console/overview"),
        ("/api/v1/profiles", "/console/overview"),
        (None, "/console/overview"),
    ],
)
def test_sign_in_leads_only_to_console_pages(target: str | None, expected: str) -> None:
    assert _next(target) == expected


def test_the_filter_form_becomes_the_apis_query() -> None:
    form = QueryParams(
        "q=ann%40example.com&subscription_state=subscribed&subscription_state=&store="
        "&created_from=2026-11-01&created_to=2026-11-30&ltv_min=&sort=ltv&order=asc"
    )
    params = profile_params(form)
    assert params == [
        ("subscription_state", "subscribed"),
        ("q", "ann@example.com"),
        ("sort", "ltv"),
        ("order", "asc"),
        ("created_from", "2026-11-01T00:00:00+00:00"),
        ("created_to", "2026-11-30T23:59:59+00:00"),
    ]
    query = ProfileQuery.model_validate(as_query(params))
    assert query.subscription_state == ["subscribed"]
    assert query.created_to is not None
    assert query.created_to.day == 30


def test_markdown_shows_html_as_text_and_refuses_script_links() -> None:
    rendered = MARKDOWN.render("**bold** <img src=x onerror=alert(1)> [x](javascript:alert(1))")
    assert "<strong>bold</strong>" in rendered
    assert "<img" not in rendered
    assert "&lt;img" in rendered
    assert 'href="javascript:' not in rendered


def test_charts_escape_their_labels() -> None:
    drawn = charts.bars([("<b>state</b>", 3)], title='a "title"')
    assert "<b>" not in drawn
    assert "&lt;b&gt;state&lt;/b&gt;" in drawn
    assert "&#34;title&#34;" in drawn or "&quot;title&quot;" in drawn
    empty = charts.columns([("revenue", [("Nov 01", 0)])], title="money")
    assert "<svg" in empty
    assert 'height="0.0"' in empty
