"""The console: pages for support and growth people, served under /console.

Pages are rendered on the server and work without script; a little script enhances
them (a profile page reloads itself when the profile changes). Every write is a form
posted here and passed to the HTTP API with the session's key, then answered with a
redirect to the page that shows its effect (or says it is pending), or with the page
again and the API's error beside the form.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.datastructures import FormData

from api.console import charts
from api.console.client import Answer, Api
from api.console.overview import overview
from api.console.session import COOKIE, PATH, SIGN_IN_COOKIE, Session, Sessions
from api.reads import ReadModels
from schemas.api import ProfileQuery
from schemas.enums import Environment, EventType, PurchaseStatus, Store, SubscriptionState

HERE = Path(__file__).parent
SERVER_SIDE = "/api/v2/server-side-api"
COMMANDS = "/api/v1/server-side-api"
LIST_FILTERS = ("subscription_state", "purchase_status", "store", "country")
DATE_FILTERS = ("created_from", "created_to", "last_seen_from", "last_seen_to")
SCALAR_FILTERS = ("q", "segment", "environment", "access_level", "ltv_min", "ltv_max")
PAGING = ("sort", "order", "limit", "cursor")
EVENTS_PER_PAGE = 50

# Notes are Markdown; raw HTML in them is shown as text, and links may not run script.
MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

DONE = {
    "granted": "Access granted.",
    "revoked": "Access revoked.",
    "attribute_set": "Attribute saved.",
    "attribute_removed": "Attribute removed.",
    "note_added": "Note added.",
    "note_edited": "Note saved.",
    "note_deleted": "Note deleted.",
    "transferred": "Access transferred.",
    "deleted": "Profile deleted.",
    "redelivering": "Delivery queued again.",
    "segment_created": "Segment saved.",
    "segment_deleted": "Segment deleted.",
    "endpoint_created": "Endpoint added.",
    "endpoint_deleted": "Endpoint deleted.",
    "endpoint_rotated": "A new signing secret is in use; the previous one stays valid.",
    "endpoint_enabled": "Endpoint enabled.",
    "endpoint_disabled": "Endpoint disabled.",
    "signed_out": "Signed out.",
}


class SignInRequired(Exception):
    """No valid session: the page answers with the sign-in page's address."""


class FormRefused(Exception):
    """A form posted without this session's token."""


@dataclass(frozen=True)
class Posted:
    session: Session
    form: FormData

    def text(self, name: str) -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def texts(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str) and v]


def _instant(day: str, end: bool = False) -> str:
    """A date from a date field as an ISO instant (UTC): its start, or its last second."""
    parsed = date.fromisoformat(day)
    return datetime.combine(parsed, time(23, 59, 59) if end else time(0), UTC).isoformat()


def profile_params(source: Any) -> list[tuple[str, str]]:
    """The profile list's query parameters as the API takes them: empty fields dropped,
    dates as instants. Anything else is left for the API to refuse."""
    params: list[tuple[str, str]] = []
    for name in LIST_FILTERS:
        params += [(name, v) for v in source.getlist(name) if v]
    for name in (*SCALAR_FILTERS, *PAGING):
        value = (source.get(name) or "").strip()
        if value:
            params.append((name, value))
    for name in DATE_FILTERS:
        value = (source.get(name) or "").strip()
        if value:
            try:
                params.append((name, _instant(value, end=name.endswith("_to"))))
            except ValueError:
                params.append((name, value))
    return params


def as_query(params: list[tuple[str, str]]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, value in params:
        if name in LIST_FILTERS:
            query.setdefault(name, []).append(value)
        else:
            query[name] = value
    return query


def _lifetime_or_date(value: Any) -> str:
    return "lifetime" if value is None else str(value)[:10]


def session_of(request: Request) -> Session:
    sessions: Sessions = request.app.state.console_sessions
    session = sessions.open(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    return session


SignedIn = Annotated[Session, Depends(session_of)]


async def posted(request: Request, session: SignedIn) -> Posted:
    form = await request.form()
    token = form.get("csrf")
    if not session.accepts(token if isinstance(token, str) else None):
        raise FormRefused
    return Posted(session, form)


Form = Annotated[Posted, Depends(posted)]


def console(app: FastAPI, reads: ReadModels, sessions: Sessions, access_levels: list[str]) -> None:
    """Serve the console on `app`, reading with `reads` and writing through `app`'s API."""
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.filters["markdown"] = lambda text: Markup(MARKDOWN.render(text or ""))
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    env.filters["when"] = lambda value: str(value)[:19].replace("T", " ") if value else "—"
    env.filters["until"] = _lifetime_or_date
    env.globals["DONE"] = DONE
    api = Api(app)
    app.state.console_sessions = sessions
    app.mount(f"{PATH}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    def page(
        request: Request,
        name: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        done = request.query_params.get("done")
        notice = DONE.get(done or "")
        if notice and request.query_params.get("pending"):
            notice = notice.rstrip(".") + ": accepted, it shows here in a moment."
        response = templates.TemplateResponse(
            request,
            name,
            {"session": session, "notice": notice, "nav": name.removesuffix(".html"), **context},
            status_code=status,
        )
        response.headers["cache-control"] = "no-store"
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def back(path: str, done: str, answer: Answer | None = None) -> RedirectResponse:
        query = {"done": done} | ({"pending": "1"} if answer is not None and answer.pending else {})
        return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)

    router = APIRouter(prefix=PATH, include_in_schema=False)

    # --- sign-in --------------------------------------------------------------------------

    @router.get("", response_class=HTMLResponse)
    async def home(session: SignedIn) -> Response:
        return RedirectResponse(f"{PATH}/overview", status_code=303)

    @router.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        token = uuid.uuid4().hex
        response = page(
            request,
            "sign_in.html",
            None,
            token=token,
            next=_next(request.query_params.get("next")),
            configured=sessions.configured,
        )
        _cookie(request, response, SIGN_IN_COOKIE, token, max_age=3600)
        return response

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        token, expected = form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE)
        if not isinstance(token, str) or not expected or token != expected:
            raise FormRefused
        key = form.get("api_key")
        cookie = sessions.sign_in(key if isinstance(key, str) else "")
        target = _next(str(form.get("next") or ""))
        if cookie is None:
            return page(
                request,
                "sign_in.html",
                None,
                status=401,
                token=expected,
                next=target,
                configured=sessions.configured,
                error="That API key is not one of this service's keys.",
            )
        response = RedirectResponse(target, status_code=303)
        _cookie(request, response, COOKIE, cookie, max_age=sessions.max_age)
        response.delete_cookie(SIGN_IN_COOKIE, path=PATH)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request, form: Form) -> Response:
        response = RedirectResponse(f"{PATH}/sign-in?done=signed_out", status_code=303)
        response.delete_cookie(COOKIE, path=PATH)
        return response

    # --- overview -------------------------------------------------------------------------

    @router.get("/overview", response_class=HTMLResponse)
    async def overview_page(request: Request, session: SignedIn) -> Response:
        figures = await overview(reads.engine, datetime.now(UTC))
        money = charts.columns(
            [
                ("revenue", [(day, revenue) for day, revenue, _ in figures.money]),
                ("proceeds", [(day, proceeds) for day, _, proceeds in figures.money]),
            ],
            title="Revenue and proceeds per day, last 30 days (USD, refunds subtracted)",
            unit="$",
        )
        activity = charts.columns(
            [("events", figures.activity)], title="Journey events per hour, last 48 hours", every=6
        )
        states = charts.bars(
            [(state.replace("_", " "), count) for state, count in figures.states],
            title="Profiles by subscription state",
        )
        return page(
            request,
            "overview.html",
            session,
            figures=figures,
            states_chart=states,
            money_chart=money,
            activity_chart=activity,
        )

    # --- profiles -------------------------------------------------------------------------

    @router.get("/profiles", response_class=HTMLResponse)
    async def profiles_page(request: Request, session: SignedIn) -> Response:
        params = profile_params(request.query_params)
        answer = await api.call(session.key, "GET", "/api/v1/profiles", params=params)
        segments = await api.call(session.key, "GET", "/api/v1/segments")
        count = None
        if answer.ok:
            count = await reads.count(ProfileQuery.model_validate(as_query(params)))
        filters = [(k, v) for k, v in params if k not in PAGING]
        unpaged = [(k, v) for k, v in params if k != "cursor"]
        return page(
            request,
            "profiles.html",
            session,
            status=200 if answer.ok else 400,
            rows=answer.data if answer.ok else [],
            next_cursor=(answer.body or {}).get("next_cursor") if answer.ok else None,
            error=None if answer.ok else answer.error,
            count=count,
            form=request.query_params,
            filters=filters,
            filters_json=json.dumps(as_query(filters)),
            unpaged=unpaged,
            segments=segments.data or [],
            choices=_choices(),
        )

    # --- profile --------------------------------------------------------------------------

    async def profile_page(
        request: Request,
        session: Session,
        profile_id: UUID,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        key = session.key
        found = await api.call(key, "GET", f"/api/v1/profiles/{profile_id}")
        if found.status == 404:
            return page(request, "missing.html", session, status=404, profile_id=profile_id)
        if not found.ok:
            return page(request, "missing.html", session, status=found.status, error=found.error)
        cursor = request.query_params.get("events")
        events = await api.call(
            key,
            "GET",
            f"/api/v1/profiles/{profile_id}/events",
            params={"limit": EVENTS_PER_PAGE, **({"cursor": cursor} if cursor else {})},
        )
        deliveries = await api.call(
            key, "GET", "/api/v1/webhooks/deliveries", params={"profile_id": str(profile_id)}
        )
        by_event: dict[str, list[dict[str, Any]]] = {}
        for delivery in deliveries.data or ():
            by_event.setdefault(str(delivery["profile_event_id"]), []).append(delivery)
        return page(
            request,
            "profile.html",
            session,
            status=status,
            profile=found.data,
            events=events.data or [],
            events_cursor=(events.body or {}).get("next_cursor"),
            deliveries=by_event,
            errors=errors or {},
            values=values or {},
            access_levels=access_levels,
            today=datetime.now(UTC).date().isoformat(),
        )

    @router.get("/profiles/{profile_id}", response_class=HTMLResponse)
    async def profile(request: Request, profile_id: UUID, session: SignedIn) -> Response:
        return await profile_page(request, session, profile_id)

    @router.get("/profiles/{profile_id}/version")
    async def version(profile_id: UUID, session: SignedIn) -> Response:
        """What the page's script compares to know the profile changed."""
        found = await api.call(session.key, "GET", f"/api/v1/profiles/{profile_id}")
        value = (found.data or {}).get("version") if found.ok else None
        return Response(
            json.dumps({"version": value}),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def command(
        request: Request,
        form: Posted,
        profile_id: UUID,
        name: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        done: str,
    ) -> Response:
        """One profile command through the API: back to the profile, or the page again
        with the API's error beside the form named `name`."""
        answer = await api.call(
            form.session.key,
            method,
            path,
            json=body,
            headers={"adapty-profile-id": str(profile_id)},
        )
        if answer.ok:
            return back(f"{PATH}/profiles/{profile_id}", done, answer)
        values = {k: v for k, v in form.form.items() if isinstance(v, str) and k != "csrf"}
        return await profile_page(
            request, form.session, profile_id, 400, {name: answer.error}, values
        )

    @router.post("/profiles/{profile_id}/grant")
    async def grant(request: Request, profile_id: UUID, form: Form) -> Response:
        body: dict[str, Any] = {"access_level_id": form.text("access_level_id")}
        if form.text("term") != "lifetime":
            until = form.text("expires_on")
            try:
                body["expires_at"] = _instant(until, end=True)
            except ValueError:
                return await profile_page(
                    request,
                    form.session,
                    profile_id,
                    400,
                    {"grant": "choose the date access lasts until, or lifetime"},
                    {k: v for k, v in form.form.items() if isinstance(v, str)},
                )
        path = f"{SERVER_SIDE}/purchase/profile/grant/access-level/"
        return await command(request, form, profile_id, "grant", "POST", path, body, "granted")

    @router.post("/profiles/{profile_id}/revoke")
    async def revoke(request: Request, profile_id: UUID, form: Form) -> Response:
        body = {"access_level_id": form.text("access_level_id")}
        path = f"{SERVER_SIDE}/purchase/profile/revoke/access-level/"
        return await command(request, form, profile_id, "revoke", "POST", path, body, "revoked")

    @router.post("/profiles/{profile_id}/attributes")
    async def set_attribute(request: Request, profile_id: UUID, form: Form) -> Response:
        key, raw = form.text("key"), form.text("value")
        value: str | float | None = raw
        done = "attribute_set"
        if form.text("remove"):
            value, done = None, "attribute_removed"
        elif form.text("kind") == "number":
            try:
                value = float(raw)
            except ValueError:
                return await profile_page(
                    request,
                    form.session,
                    profile_id,
                    400,
                    {"attributes": f"{raw!r} is not a number"},
                    {"key": key, "value": raw, "kind": "number"},
                )
        body = {"custom_attributes": [{"key": key, "value": value}]}
        path = f"{COMMANDS}/profile/attributes/"
        return await command(request, form, profile_id, "attributes", "POST", path, body, done)

    @router.post("/profiles/{profile_id}/notes")
    async def add_note(request: Request, profile_id: UUID, form: Form) -> Response:
        body = {"text": form.text("text")}
        path = f"{COMMANDS}/profile/notes/"
        return await command(request, form, profile_id, "note", "POST", path, body, "note_added")

    @router.post("/profiles/{profile_id}/notes/{note_id}")
    async def edit_note(request: Request, profile_id: UUID, note_id: str, form: Form) -> Response:
        path = f"{COMMANDS}/profile/notes/{note_id}/"
        if form.text("delete"):
            return await command(
                request, form, profile_id, f"note-{note_id}", "DELETE", path, None, "note_deleted"
            )
        body = {"text": form.text("text")}
        return await command(
            request, form, profile_id, f"note-{note_id}", "PATCH", path, body, "note_edited"
        )

    @router.post("/profiles/{profile_id}/transfer")
    async def transfer(request: Request, profile_id: UUID, form: Form) -> Response:
        """First the profile the search finds, to confirm; then the transfer itself."""
        target = form.text("to_profile_id")
        if target and form.text("confirmed"):
            body = {"to_profile_id": target}
            path = f"{COMMANDS}/profile/transfer/"
            return await command(
                request, form, profile_id, "transfer", "POST", path, body, "transferred"
            )
        wanted = form.text("to")
        found = await api.call(
            form.session.key, "GET", "/api/v1/profiles", params={"q": wanted, "limit": 5}
        )
        candidates = [
            row for row in (found.data or []) if str(row["profile_id"]) != str(profile_id)
        ]
        if not wanted or not candidates:
            message = found.error if not found.ok else f"no other profile matches {wanted!r}"
            return await profile_page(
                request, form.session, profile_id, 400, {"transfer": message}, {"to": wanted}
            )
        source = await api.call(form.session.key, "GET", f"/api/v1/profiles/{profile_id}")
        return page(
            request,
            "transfer.html",
            form.session,
            profile=source.data,
            candidates=candidates,
        )

    @router.post("/profiles/{profile_id}/delete")
    async def delete(request: Request, profile_id: UUID, form: Form) -> Response:
        if form.text("confirm") != str(profile_id):
            return await profile_page(
                request,
                form.session,
                profile_id,
                400,
                {"delete": "type the profile id exactly to confirm"},
            )
        answer = await api.call(
            form.session.key,
            "DELETE",
            f"{SERVER_SIDE}/profile/",
            headers={"adapty-profile-id": str(profile_id)},
        )
        if not answer.ok:
            return await profile_page(
                request, form.session, profile_id, 400, {"delete": answer.error}
            )
        return back(f"{PATH}/profiles", "deleted", answer)

    # --- segments -------------------------------------------------------------------------

    @router.get("/segments", response_class=HTMLResponse)
    async def segments_page(request: Request, session: SignedIn) -> Response:
        listed = await api.call(session.key, "GET", "/api/v1/segments")
        rows = []
        for segment in listed.data or ():
            members = await reads.count(ProfileQuery(segment=UUID(segment["segment_id"])))
            rows.append({**segment, "members": members, "query": _segment_query(segment)})
        return page(request, "segments.html", session, segments=rows)

    @router.post("/segments")
    async def create_segment(request: Request, form: Form) -> Response:
        try:
            filters = json.loads(form.text("filters") or "{}")
        except ValueError:
            filters = {}
        for name in ("q", "segment"):
            filters.pop(name, None)
        answer = await api.call(
            form.session.key,
            "POST",
            "/api/v1/segments",
            json={"name": form.text("name"), "filters": filters},
        )
        if not answer.ok:
            listed = await api.call(form.session.key, "GET", "/api/v1/segments")
            return page(
                request,
                "segments.html",
                form.session,
                status=400,
                segments=[{**s, "members": None} for s in listed.data or ()],
                error=answer.error,
            )
        return back(f"{PATH}/segments", "segment_created")

    @router.post("/segments/{segment_id}/delete")
    async def delete_segment(segment_id: UUID, form: Form) -> Response:
        await api.call(form.session.key, "DELETE", f"/api/v1/segments/{segment_id}")
        return back(f"{PATH}/segments", "segment_deleted")

    # --- webhooks -------------------------------------------------------------------------

    async def webhooks_page(
        request: Request, session: Session, status: int = 200, error: str | None = None
    ) -> Response:
        params = {
            k: v
            for k in ("endpoint_id", "status", "cursor", "profile_id")
            if (v := request.query_params.get(k))
        }
        endpoints = await api.call(session.key, "GET", "/api/v1/webhooks/endpoints")
        deliveries = await api.call(
            session.key, "GET", "/api/v1/webhooks/deliveries", params=params
        )
        return page(
            request,
            "webhooks.html",
            session,
            status=status if deliveries.ok else 400,
            endpoints=endpoints.data or [],
            deliveries=deliveries.data or [],
            next_cursor=(deliveries.body or {}).get("next_cursor"),
            params=params,
            error=error or (None if deliveries.ok else deliveries.error),
            event_types=[t.value for t in EventType],
        )

    @router.get("/webhooks", response_class=HTMLResponse)
    async def webhooks(request: Request, session: SignedIn) -> Response:
        return await webhooks_page(request, session)

    @router.post("/webhooks/endpoints")
    async def create_endpoint(request: Request, form: Form) -> Response:
        body: dict[str, Any] = {
            "url": form.text("url"),
            "event_types": form.texts("event_types"),
            "environment": form.text("environment") or "production",
            "verify": bool(form.text("verify")),
        }
        if form.text("authorization"):
            body["authorization"] = form.text("authorization")
        answer = await api.call(form.session.key, "POST", "/api/v1/webhooks/endpoints", json=body)
        if not answer.ok:
            return await webhooks_page(request, form.session, 400, answer.error)
        return back(f"{PATH}/webhooks", "endpoint_created")

    @router.post("/webhooks/endpoints/{endpoint_id}/{action}")
    async def endpoint_action(
        request: Request, endpoint_id: UUID, action: str, form: Form
    ) -> Response:
        path = f"/api/v1/webhooks/endpoints/{endpoint_id}"
        calls = {
            "rotate": ("POST", f"{path}/rotate-secret", "endpoint_rotated"),
            "enable": ("POST", f"{path}/enable", "endpoint_enabled"),
            "disable": ("POST", f"{path}/disable", "endpoint_disabled"),
            "delete": ("DELETE", path, "endpoint_deleted"),
        }
        if action not in calls:
            return await webhooks_page(request, form.session, 404, f"no action {action!r}")
        method, target, done = calls[action]
        answer = await api.call(form.session.key, method, target)
        if not answer.ok:
            return await webhooks_page(request, form.session, 400, answer.error)
        return back(f"{PATH}/webhooks", done)

    @router.post("/webhooks/deliveries/redeliver")
    async def redeliver_range(request: Request, form: Form) -> Response:
        body: dict[str, Any] = {
            "endpoint_id": form.text("endpoint_id"),
            "status": form.text("status") or "failed",
        }
        try:
            body["since"] = _instant(form.text("since"))
            if form.text("until"):
                body["until"] = _instant(form.text("until"), end=True)
        except ValueError:
            return await webhooks_page(request, form.session, 400, "since: choose a date")
        answer = await api.call(
            form.session.key, "POST", "/api/v1/webhooks/deliveries/redeliver", json=body
        )
        if not answer.ok:
            return await webhooks_page(request, form.session, 400, answer.error)
        return back(f"{PATH}/webhooks", "redelivering")

    @router.post("/webhooks/deliveries/{delivery_id}/redeliver")
    async def redeliver(request: Request, delivery_id: int, form: Form) -> Response:
        answer = await api.call(
            form.session.key, "POST", f"/api/v1/webhooks/deliveries/{delivery_id}/redeliver"
        )
        target = _next(form.text("back") or f"{PATH}/webhooks")
        if not answer.ok:
            return await webhooks_page(request, form.session, 400, answer.error)
        return back(target.split("?")[0], "redelivering")

    app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, error: SignInRequired) -> Response:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{PATH}/sign-in?{urlencode({'next': wanted})}"
        if request.method != "GET" or request.url.path.endswith("/version"):
            return Response(status_code=401, headers={"location": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(FormRefused)
    async def refused(request: Request, error: FormRefused) -> Response:
        return page(request, "refused.html", sessions.open(request.cookies.get(COOKIE)), 403)


def _next(target: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if target and target.startswith(f"{PATH}/") and not target.startswith(f"{PATH}//"):
        return target
    return f"{PATH}/overview"


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def _segment_query(segment: dict[str, Any]) -> str:
    return urlencode({"segment": str(segment["segment_id"])})


def _choices() -> dict[str, list[str]]:
    return {
        "subscription_state": [s.value for s in SubscriptionState],
        "purchase_status": [s.value for s in PurchaseStatus],
        "store": [s.value for s in Store],
        "environment": [e.value for e in Environment],
    }
