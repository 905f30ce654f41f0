"""The pages: sign-in, each role's home, and the forms that post through the JSON API.

Every form posts here, is checked for its session's CSRF secret, becomes the same JSON body an
API client would send, and goes to the API in-process (services/web/api.py). A refusal comes
back as the API's reasons, shown next to the fields they name; a 202 redirects to the page
with the posting's id, whose status the page shows until it is decided.
"""

from __future__ import annotations

import io
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import segno
from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData

from schemas.common import Role, Urgency
from schemas.messages import EVENTS
from schemas.reference import TermKind
from services.gateway import health
from services.gateway.deps import SUSPENDED
from services.gateway.readapi import events
from services.web.api import Api, field_errors
from services.web.charts import SERIES, balance_chart, balances_over_time, bar_chart
from services.web.i18n import LANGUAGES, ZONE, Translator, pick, terms_of
from services.web.sankey import KINDS, fund_flows, layout, sankey_svg, sankey_table
from services.web.sessions import (
    COOKIE,
    LANG_COOKIE,
    LIFETIME,
    Session,
    close_session,
    csrf_ok,
    open_session,
    session_of,
)
from services.web.shifts import hours, minutes_served, minutes_this_year, upcoming_and_past

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # every asset is the exchange's own: nothing may load from elsewhere, nothing may frame us
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PRE_COOKIE = "cx_pre"
"""Before sign-in there is no session: the sign-in form's CSRF secret is a cookie it echoes."""
LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0)]
YUAN = re.compile(r"^\s*(\d{1,12})(?:\.(\d{1,2}))?\s*$")


class BadForm(ValueError):
    """A form value the page itself cannot turn into JSON (the API decides everything else)."""

    def __init__(self, field: str, key: str) -> None:
        super().__init__(field)
        self.field = field
        self.key = key


def fen(text: str, field: str) -> int:
    """Yuan as typed ("1,234.5") → integer fen, exactly; never through a float."""
    m = YUAN.match(text.replace(",", "").replace("，", ""))
    if m is None:
        raise BadForm(field, "error.amount")
    return int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))


def moment(day: str, at: str, field: str) -> str:
    """A Nanjing date and time from the form → an ISO moment with its offset."""
    try:
        d = date.fromisoformat(day)
        t = time.fromisoformat(at) if at else time(0, 0)
    except ValueError:
        raise BadForm(field, "error.moment") from None
    return datetime.combine(d, t, tzinfo=ZONE).isoformat()


def local_path(back: str) -> str:
    """`back` if it is a path on this site, else "/": browsers read `//host` and `/\\host` as
    another site, so a link could otherwise send a person elsewhere with our name on it."""
    local = back.startswith("/") and not back.startswith("//") and "\\" not in back
    if local and all(c.isprintable() and not c.isspace() for c in back):
        return back
    return "/"


def _lang(request: Request) -> str:
    return pick(request.cookies.get(LANG_COOKIE))


def render(
    request: Request,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    terms = terms_of(request.app.state)
    t = Translator(_lang(request), terms)
    return templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": t.lang,
            "languages": list(LANGUAGES),
            "session": session,
            "who": session.principal if session else None,
            "csrf": session.csrf if session else "",
            "categories": terms.listed(TermKind.CATEGORY) if terms else [],
            "skills": terms.listed(TermKind.SKILL) if terms else [],
            "urgencies": list(Urgency),
            "live_events": LIVE_EVENTS,
            "weekdays": list(WEEKDAYS),
            "slots": list(SLOTS),
            "errors": {},
            "values": {},
            "amending": None,
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


async def current(request: Request) -> Session | None:
    """The signed-in session, or None. A suspended organisation's session is refused outright
    (403, the API's reason), on every page, from the moment the operator suspends it."""
    session = await session_of(request.app.state.pool, request.cookies.get(COOKIE))
    if session is not None and session.principal.suspended:
        raise HTTPException(403, SUSPENDED)
    return session


def api_for(request: Request, session: Session) -> Api:
    return Api(request.app, request.app.state.web_secret, session.id)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


MOST_ITEMS = 2000
"""Where a page stops following a list's cursor: more than a page can usefully show."""


async def all_items(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list (following `next`), up to MOST_ITEMS; [] when refused."""
    items: list[dict[str, Any]] = []
    after = None
    while len(items) < MOST_ITEMS:
        r = await api.get(path, limit=500, **params, **({"after": after} if after else {}))
        if r.status_code != 200:
            break
        page = r.json()
        items += page.get("items", [])
        after = page.get("next")
        if after is None:
            break
    return items


# ---- signing in and out, language ----


@router.get("/", response_class=HTMLResponse)
async def front(request: Request) -> Response:
    session = await current(request)
    if session is not None:
        return _see_other("/home")
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "signin.html", None, pre=pre)
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", max_age=3600)
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    form = await request.form()
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not secrets.compare_digest(pre, str(form.get("pre", ""))):
        return render(request, "signin.html", None, 403, pre=pre, error="error.csrf")
    token = str(form.get("token", "")).strip()
    session_id = await open_session(request.app.state.pool, token) if token else None
    if session_id is None:
        return render(request, "signin.html", None, 401, pre=pre, error="signin.wrong")
    response = _see_other("/home")
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(LIFETIME.total_seconds()),
        path="/",
    )
    response.delete_cookie(PRE_COOKIE)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = await current(request)
    form = await request.form()
    if session is not None:
        if not csrf_ok(session, str(form.get("csrf", ""))):
            return render(request, "error.html", session, 403, message="error.csrf")
        await close_session(request.app.state.pool, session.id)
    response = _see_other("/")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/lang/{code}")
async def choose_language(request: Request, code: str, back: str = "/") -> Response:
    """Switch the language; back to the same page (a local path only: no open redirect)."""
    response = _see_other(local_path(back))
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, samesite="lax", max_age=365 * 86400)
    return response


LIVE_MATCH = ("proposed", "accepted", "completed")
"""Matches whose money is reserved for or paid to a need (declined, withdrawn, expired: not)."""

# ---- live updates ----

LIVE_EVENTS = " ".join(m.__name__ for m in EVENTS)
"""The event types the pages listen for (each arrives as a named Server-Sent Event)."""


@router.get("/live")
async def live(request: Request, last_event_id: LastEventId = None) -> Response:
    """The API's event stream for the signed-in person (`GET /v1/events`, the same function,
    so the same visibility rules and stream slots), authenticated by the session cookie: a
    browser's EventSource cannot send a bearer token, and the token must not be in the page."""
    session = await current(request)
    if session is None:
        return Response(status_code=401)
    return await events(request, request.app.state.pool, session.principal, None, last_event_id)


# ---- home, by role ----


@router.get("/home", response_class=HTMLResponse)
async def home(request: Request, posted: str | None = None, warned: str | None = None) -> Response:
    session = await current(request)
    if session is None:
        return _see_other("/")
    async with api_for(request, session) as api:
        status = None
        if posted:
            r = await api.get(f"/postings/{posted}")
            status = r.json() if r.status_code == 200 else None
            if status is not None and warned:
                status["near_duplicate"] = True
        role = session.principal.role
        if role is Role.FOUNDATION:
            return await _foundation(request, session, api, status)
        if role is Role.COMMUNITY:
            return await _community(request, session, api, status)
        if role is Role.VOLUNTEER:
            return await _volunteer(request, session, api, status)
        return await _overview(request, session, api, status)


async def _foundation(
    request: Request, session: Session, api: Api, status: Any, **extra: Any
) -> HTMLResponse:
    funds = (await api.get("/funds", limit=100)).json().get("items", [])
    mine = [f for f in funds if f.get("org_id") == str(session.principal.id)]
    t = Translator(_lang(request), terms_of(request.app.state))
    labels = {s: t(f"fund.{s}") for s in SERIES}
    for f in mine:
        history = await api.get(f"/funds/{f['fund_id']}/history")
        items = history.json().get("items", []) if history.status_code == 200 else []
        currency = str(f["currency"])
        f["chart"] = balance_chart(
            balances_over_time(items, f["fund_id"]),
            t("chart.balances", name=f["name"]),
            labels,
            partial(t.money, currency=currency),
        )
    # where the money went: matched money by the need's district and category
    ids = {f["fund_id"] for f in mine}
    by_district: dict[str, int] = {}
    by_category: dict[str, int] = {}
    matches = (await api.get("/matches", limit=200)).json().get("items", [])
    for m in matches:
        amount = m.get("amount") or {}
        if m.get("fund_id") not in ids or m.get("status") not in LIVE_MATCH:
            continue
        need = await api.get(f"/needs/{m['need_id']}")
        if need.status_code != 200:
            continue
        n = need.json()
        fen_ = int(amount.get("amount_minor", 0))
        by_district[n["district"]] = by_district.get(n["district"], 0) + fen_
        label = t(f"category.{n['category']}")
        by_category[label] = by_category.get(label, 0) + fen_
    flows = [
        bar_chart(list(by_district.items()), t("chart.by_district"), t.money, "by-district"),
        bar_chart(list(by_category.items()), t("chart.by_category"), t.money, "by-category"),
    ]
    return render(
        request,
        "foundation.html",
        session,
        extra.pop("status_code", 200),
        funds=mine,
        flows=[f for f in flows if f],
        posting=status,
        **extra,
    )


async def _community(
    request: Request, session: Session, api: Api, status: Any, **extra: Any
) -> HTMLResponse:
    mine = await all_items(api, "/needs", org_id=str(session.principal.id))
    matches = (await api.get("/matches", limit=500)).json().get("items", [])
    return render(
        request,
        "community.html",
        session,
        extra.pop("status_code", 200),
        needs=mine,
        matches=matches,
        registered=await all_items(api, "/volunteers"),
        posting=status,
        **extra,
    )


async def _volunteer(
    request: Request, session: Session, api: Api, status: Any, **extra: Any
) -> HTMLResponse:
    r = await api.get(f"/volunteers/{session.principal.id}")
    me = r.json() if r.status_code == 200 else {"matches": []}
    for m in me.get("matches", []):  # what the shift is for, where (the need is public)
        need = await api.get(f"/needs/{m['need_id']}")
        m["need"] = need.json() if need.status_code == 200 else {}
    matches = me.get("matches", [])
    proposed = [m for m in matches if m.get("status") == "proposed"]
    now = datetime.now(ZONE)
    upcoming, past = upcoming_and_past(matches, now)
    return render(
        request,
        "volunteer.html",
        session,
        me=me,
        proposed=proposed,
        upcoming=upcoming,
        past=past,
        hours=hours(minutes_this_year(matches, now)),
        hours_total=hours(minutes_served(matches)),
        posting=status,
        pledged=pledged_cells(me),
        **extra,
    )


async def _overview(
    request: Request, session: Session, api: Api, status: Any, **extra: Any
) -> HTMLResponse:
    needs = (await api.get("/needs", limit=200)).json().get("items", [])
    funds = (await api.get("/funds", limit=200)).json().get("items", [])
    by_district: dict[str, dict[str, int]] = {}
    for n in needs:
        row = by_district.setdefault(n["district"], {"open": 0, "met": 0})
        if n["status"] in ("matched", "fulfilled"):
            row["met"] += 1
        elif n["status"] in ("open", "partially_matched"):
            row["open"] += 1  # cancelled and expired needs are neither
    money_in = sum(int(f["balance"]["donated_minor"]) for f in funds)
    money_out = sum(int(f["balance"]["disbursed_minor"]) for f in funds)
    matches = (await api.get("/matches", limit=200)).json().get("items", [])
    minutes = sum(int(m.get("minutes") or 0) for m in matches if m.get("status") == "completed")
    services = None
    if session.principal.role is Role.AUDITOR:  # the details /healthz gives an auditor's token
        try:
            report = await health.check_for(request.app.state.pool, request.app.state.settings)
            services = sorted(report["services"].items())
        except (OSError, asyncpg.PostgresError):
            services = None
    return render(
        request,
        "overview.html",
        session,
        districts=sorted(by_district.items()),
        funds=funds,
        money_in=money_in,
        money_out=money_out,
        hours=round(minutes / 60, 1),
        services=services,
        registered=await all_items(api, "/volunteers")
        if session.principal.role is Role.SOCIAL_ORG
        else [],
        posting=status,
        **extra,
    )


# ---- forms ----


async def _checked(request: Request) -> tuple[Session | None, FormData | None, Response | None]:
    """The session and form of a state-changing post, or the answer that refuses it."""
    session = await current(request)
    if session is None:
        return None, None, _see_other("/")
    form = await request.form()
    if not csrf_ok(session, str(form.get("csrf", ""))):
        return session, None, render(request, "error.html", session, 403, message="error.csrf")
    return session, form, None


async def _submit(
    request: Request,
    session: Session,
    form: FormData,
    path: str,
    build: Callable[[FormData], dict[str, Any] | None],
    again: Callable[..., Awaitable[HTMLResponse]],
    method: str = "POST",
    back: str = "/home",
) -> Response:
    """Build the body (a BadForm names its field), post it, redirect on 202, else re-render
    the page with the API's reasons next to the fields."""
    values = {k: str(v) for k, v in form.items()}
    async with api_for(request, session) as api:
        try:
            body = build(form)
        except BadForm as bad:
            t = Translator(_lang(request), terms_of(request.app.state))
            return await again(
                request,
                session,
                api,
                None,
                errors={bad.field: t(bad.key)},
                values=values,
                status_code=422,
            )
        r = await api.post(path, body, str(form.get("key", "")), method)
        if r.status_code in (200, 202):
            posted = r.json().get("posting_id", "")
            warned = "&warned=1" if r.json().get("warnings") else ""
            return _see_other(f"{back}?posted={posted}{warned}" if posted else back)
        return await again(
            request,
            session,
            api,
            None,
            errors=field_errors(r),
            values=values,
            status_code=r.status_code if 400 <= r.status_code < 500 else 503,
        )


@router.post("/funds")
async def open_fund(request: Request) -> Response:
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": str(f.get("name", "")).strip(),
            "foundation": session.principal.name,
            "categories": [str(c) for c in f.getlist("categories")],
            "districts": [
                d.strip() for d in re.split(r"[,，、\s]+", str(f.get("districts", ""))) if d.strip()
            ],
        }
        if f.get("cap_per_need"):
            body["cap_per_need"] = {
                "amount_minor": fen(str(f["cap_per_need"]), "cap_per_need"),
                "currency": "CNY",
            }
        if f.get("valid_until"):
            body["valid_until"] = moment(str(f["valid_until"]), "23:59", "valid_until")
        share = str(f.get("urgent_reserve_percent", "")).strip().rstrip("%％").strip()
        if share:
            if not share.isdigit():
                raise BadForm("urgent_reserve_percent", "error.percent")
            body["urgent_reserve_percent"] = int(share)
        return body

    return await _submit(request, session, form, "/funds", build, _foundation)


@router.get("/funds/{fund_id}", response_class=HTMLResponse)
async def fund_page(request: Request, fund_id: uuid.UUID, posted: str | None = None) -> Response:
    """One fund's history, every movement of money in order, with a refund form for each gift
    (the API decides who may see it: its foundation and auditors)."""
    session = await current(request)
    if session is None:
        return _see_other("/")
    async with api_for(request, session) as api:
        return await _fund(request, session, api, fund_id, posted)


async def _fund(
    request: Request,
    session: Session,
    api: Api,
    fund_id: uuid.UUID,
    posted: str | None = None,
    **extra: Any,
) -> HTMLResponse:
    status_code = extra.pop("status_code", 200)
    # the matches before the history: money only moves on from available, so what the
    # history shows given, less what these hold and what went back, is never negative
    matches = await all_items(api, "/matches")
    fund = await api.get(f"/funds/{fund_id}")
    history = await api.get(f"/funds/{fund_id}/history")
    if fund.status_code != 200 or history.status_code != 200:
        failed = fund if fund.status_code != 200 else history
        return render(request, "error.html", session, failed.status_code, message="error.not_yours")
    status = None
    if posted:
        r = await api.get(f"/postings/{posted}")
        status = r.json() if r.status_code == 200 else None
    # the fund's own accounts; the income account's lines mirror the gifts (double entry)
    lines = [h for h in history.json()["items"] if str(h["account"]).rsplit(":", 1)[-1] in SERIES]
    gifts: dict[str, int] = {}
    for h in history.json()["items"]:
        if h.get("donation_id") and str(h["account"]).endswith(":available"):
            gifts[h["donation_id"]] = gifts.get(h["donation_id"], 0) + int(h["amount_minor"])
    return render(
        request,
        "fund.html",
        session,
        status_code,
        fund=fund.json(),
        lines=lines,
        gifts=[(d, v) for d, v in gifts.items() if v > 0],
        flow=await _flow(request, api, fund.json(), history.json()["items"], matches),
        posting=status,
        **extra,
    )


async def _flow(
    request: Request,
    api: Api,
    fund: dict[str, Any],
    history: list[dict[str, Any]],
    matches: list[dict[str, Any]],
) -> tuple[Markup, Markup] | None:
    """The fund's flow chart and its table (services/web/sankey.py), or None before any gift."""
    t = Translator(_lang(request), terms_of(request.app.state))
    fund_id = str(fund["fund_id"])
    titles = {}
    for need_id in {str(m["need_id"]) for m in matches if m.get("fund_id") == fund_id}:
        need = await api.get(f"/needs/{need_id}")
        if need.status_code == 200:
            titles[need_id] = str(need.json()["title"])
    words = ("others", "other_needs", "refunded", "available", "unknown_need")
    donors, out = fund_flows(
        history, matches, titles, fund_id, {w: t(f"sankey.{w}") for w in words}
    )
    if not donors:
        return None
    chart = layout(donors, out, str(fund["name"]))
    kinds = {k: t(f"sankey.kind.{k}") for k in KINDS}
    money = partial(t.money, currency=str(fund["currency"]))
    heads = [t(f"sankey.{h}") for h in ("from", "to", "amount", "state")]
    return (
        sankey_svg(chart, t("sankey.title", name=fund["name"]), kinds, money),
        sankey_table(chart, t("sankey.table"), heads, kinds, money),
    )


@router.post("/funds/{fund_id}/donations/{donation_id}/refunds")
async def refund(request: Request, fund_id: uuid.UUID, donation_id: uuid.UUID) -> Response:
    """Refund all or part of a gift, with the reason the record keeps."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    values = {k: str(v) for k, v in form.items()}
    async with api_for(request, session) as api:
        try:
            body = {
                "amount": {
                    "amount_minor": fen(values.get("amount", ""), "amount"),
                    "currency": "CNY",
                },
                "reason": values.get("reason", "").strip(),
            }
        except BadForm as bad:
            t = Translator(_lang(request), terms_of(request.app.state))
            return await _fund(
                request,
                session,
                api,
                fund_id,
                errors={bad.field: t(bad.key)},
                values=values,
                status_code=422,
            )
        r = await api.post(
            f"/funds/{fund_id}/donations/{donation_id}/refunds", body, values.get("key", "")
        )
        if r.status_code == 202:
            return _see_other(f"/funds/{fund_id}?posted={r.json().get('posting_id', '')}")
        return await _fund(
            request,
            session,
            api,
            fund_id,
            errors=field_errors(r),
            values=values,
            status_code=r.status_code if 400 <= r.status_code < 500 else 503,
        )


@router.post("/funds/{fund_id}/reserve")
async def set_reserve(request: Request, fund_id: uuid.UUID) -> Response:
    """Change the share of the fund held back for urgent needs (the API decides the range and
    who may; its reason is shown next to the field)."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    values = {k: str(v) for k, v in form.items()}
    async with api_for(request, session) as api:
        typed = values.get("urgent_reserve_percent", "").strip().rstrip("%％").strip()
        if not typed.isdigit():
            t = Translator(_lang(request), terms_of(request.app.state))
            errors = {"urgent_reserve_percent": t("error.percent")}
            return await _fund(
                request, session, api, fund_id, errors=errors, values=values, status_code=422
            )
        body = {"urgent_reserve_percent": int(typed)}
        r = await api.post(f"/funds/{fund_id}/reserve", body, values.get("key", ""), "PUT")
        if r.status_code == 202:
            return _see_other(f"/funds/{fund_id}?posted={r.json().get('posting_id', '')}")
        return await _fund(
            request,
            session,
            api,
            fund_id,
            errors=field_errors(r),
            values=values,
            status_code=r.status_code if 400 <= r.status_code < 500 else 503,
        )


@router.post("/funds/{fund_id}/donations")
async def donate(request: Request, fund_id: uuid.UUID) -> Response:
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        return {
            "donor": str(f.get("donor", "")).strip(),
            "amount": {"amount_minor": fen(str(f.get("amount", "")), "amount"), "currency": "CNY"},
        }

    return await _submit(request, session, form, f"/funds/{fund_id}/donations", build, _foundation)


@router.post("/needs")
async def post_need(request: Request) -> Response:
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        kind = str(f.get("kind", "volunteer_hours"))
        body: dict[str, Any] = {
            "title": str(f.get("title", "")).strip(),
            "kind": kind,
            "category": str(f.get("category", "")),
            "place": {
                "district": str(f.get("district", "")).strip(),
                "street": str(f.get("street", "")).strip() or None,
                "community": str(f.get("community", "")).strip() or None,
            },
            "urgency": str(f.get("urgency", "normal")),
            "people_served": int(str(f.get("people_served") or 0) or 0),
        }
        if kind == "volunteer_hours":
            day = str(f.get("day", ""))
            start = moment(day, str(f.get("start", "")), "shift.start")
            end = moment(day, str(f.get("end", "")), "shift.end")
            body["shift"] = {"start": start, "end": end}
            body["deadline"] = end
            body["volunteers_needed"] = int(str(f.get("volunteers_needed") or 1))
            body["required_skills"] = [str(s) for s in f.getlist("required_skills")]
        else:
            body["amount"] = {
                "amount_minor": fen(str(f.get("amount", "")), "amount"),
                "currency": "CNY",
            }
            body["deadline"] = moment(str(f.get("deadline", "")), "23:59", "deadline")
        body["place"] = {k: v for k, v in body["place"].items() if v}
        return body

    weeks = str(form.get("repeat_weeks", "")).strip()
    path = f"/needs?repeat_weeks={weeks}" if weeks.isdigit() and int(weeks) > 1 else "/needs"
    return await _submit(request, session, form, path, build, _community)


@router.post("/volunteers")
async def register_volunteer(request: Request) -> Response:
    """A community or social organisation registers a volunteer. The answer shows the
    volunteer's sign-in once, with a QR code for their phone; it is not kept anywhere."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    body = {
        "pseudonym": str(form.get("pseudonym", "")).strip(),
        "home": {
            k: v
            for k, v in (
                ("district", str(form.get("district", "")).strip()),
                ("street", str(form.get("street", "")).strip()),
                ("community", str(form.get("community", "")).strip()),
            )
            if v
        },
    }
    async with api_for(request, session) as api:
        r = await api.post("/volunteers", body, str(form.get("key", "")))
        if r.status_code != 202 or "volunteer_token" not in r.json():
            again = _community if session.principal.role is Role.COMMUNITY else _overview
            return await again(
                request,
                session,
                api,
                None,
                errors=field_errors(r) if r.status_code != 202 else {"": "no sign-in returned"},
                values={k: str(v) for k, v in form.items()},
                status_code=r.status_code if 400 <= r.status_code < 500 else 503,
            )
    token = r.json()["volunteer_token"]
    link = f"{request.base_url}#token={token}"
    return render(
        request,
        "registered.html",
        session,
        pseudonym=body["pseudonym"],
        token=token,
        qr=qr_svg(
            link, Translator(_lang(request), terms_of(request.app.state))("register.qr_title")
        ),
    )


def qr_svg(text: str, title: str) -> Markup:
    """A QR code as inline SVG (segno, pure Python): the phone's camera opens the sign-in page
    with the token in the fragment, which never leaves the phone (browsers send no fragment,
    servers log none) and which the page removes from the address bar at once."""
    out = io.BytesIO()
    segno.make(text, error="m").save(
        out, kind="svg", scale=5, border=3, xmldecl=False, title=title, dark="#000", light="#fff"
    )
    return Markup(out.getvalue().decode())


WEEKDAYS = range(7)
SLOTS = {
    "morning": (time(8), time(12)),
    "afternoon": (time(13), time(17)),
    "evening": (time(18), time(21)),
}
"""The availability grid's cells: a weekday and a part of the day, in Nanjing."""
GRID_DAYS = 14
"""A pledge's availability is concrete windows: the grid is laid over the next two weeks."""


def availability(cells: list[str], today: date) -> list[dict[str, str]]:
    """The grid's ticked cells ("2-morning": Wednesday mornings) as time windows over the next
    GRID_DAYS days from tomorrow, in order."""
    wanted = set(cells)
    windows = []
    for n in range(1, GRID_DAYS + 1):
        day = today + timedelta(days=n)
        for slot, (start, end) in SLOTS.items():
            if f"{day.weekday()}-{slot}" in wanted:
                windows.append(
                    {
                        "start": datetime.combine(day, start, tzinfo=ZONE).isoformat(),
                        "end": datetime.combine(day, end, tzinfo=ZONE).isoformat(),
                    }
                )
    return windows


@router.post("/pledge")
async def pledge(request: Request) -> Response:
    """A volunteer's pledge: skills, the weekly grid, a weekly hour limit, how far they go."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    return await _submit(
        request,
        session,
        form,
        f"/volunteers/{session.principal.id}/pledge",
        pledge_body,
        _volunteer,
        method="PUT",
    )


def pledge_body(f: FormData) -> dict[str, Any]:
    """The pledge form (the volunteer's own, or their registrar's for them) → the API's body."""
    windows = availability([str(c) for c in f.getlist("slots")], datetime.now(ZONE).date())
    if not windows:
        raise BadForm("availability", "error.availability")
    home = {
        k: str(f.get(k, "")).strip()
        for k in ("district", "street", "community")
        if str(f.get(k, "")).strip()
    }
    hours_ = str(f.get("weekly_hour_limit") or "8").strip()
    if not hours_.isdigit():
        raise BadForm("weekly_hour_limit", "error.number")
    return {
        "pseudonym": str(f.get("pseudonym", "")).strip(),
        "home": home,
        "skills": [str(s) for s in f.getlist("skills")],
        "availability": windows,
        "weekly_hour_limit": int(hours_),
        "travel": str(f.get("travel", "same_district")),
    }


# ---- a registrar and the volunteers it registered ----


@router.get("/volunteers/{volunteer_id}", response_class=HTMLResponse)
async def volunteer_page(
    request: Request, volunteer_id: uuid.UUID, posted: str | None = None
) -> Response:
    """One volunteer as the organisation that registered them sees them: their pledge, to
    change or withdraw for them (the API decides who may: the volunteer and their registrar)."""
    session = await current(request)
    if session is None:
        return _see_other("/")
    async with api_for(request, session) as api:
        status = None
        if posted:
            r = await api.get(f"/postings/{posted}")
            status = r.json() if r.status_code == 200 else None
        return await _registered_volunteer(request, session, api, status, volunteer_id)


async def _registered_volunteer(
    request: Request,
    session: Session,
    api: Api,
    status: Any,
    volunteer_id: uuid.UUID,
    **extra: Any,
) -> HTMLResponse:
    r = await api.get(f"/volunteers/{volunteer_id}")
    if r.status_code != 200:
        message = "error.not_found" if r.status_code == 404 else "error.not_yours"
        return render(request, "error.html", session, r.status_code, message=message)
    me = r.json()
    return render(
        request,
        "registrar.html",
        session,
        extra.pop("status_code", 200),
        me=me,
        pledged=pledged_cells(me),
        posting=status,
        **extra,
    )


def _for_volunteer(volunteer_id: uuid.UUID) -> Callable[..., Awaitable[HTMLResponse]]:
    """The registrar's page of this volunteer, as `_submit` re-renders a refused form."""

    async def again(
        request: Request, session: Session, api: Api, status: Any, **extra: Any
    ) -> HTMLResponse:
        return await _registered_volunteer(request, session, api, status, volunteer_id, **extra)

    return again


@router.post("/volunteers/{volunteer_id}/pledge")
async def pledge_for(request: Request, volunteer_id: uuid.UUID) -> Response:
    """The registrar changes a volunteer's pledge for them."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    return await _submit(
        request,
        session,
        form,
        f"/volunteers/{volunteer_id}/pledge",
        pledge_body,
        _for_volunteer(volunteer_id),
        method="PUT",
        back=f"/volunteers/{volunteer_id}",
    )


@router.post("/volunteers/{volunteer_id}/withdraw")
async def withdraw_for(request: Request, volunteer_id: uuid.UUID) -> Response:
    """The registrar withdraws a volunteer's pledge for them, with the reason."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        return {"reason": str(f.get("reason", "")).strip()}

    return await _submit(
        request,
        session,
        form,
        f"/volunteers/{volunteer_id}/pledge/withdraw",
        build,
        _for_volunteer(volunteer_id),
        back=f"/volunteers/{volunteer_id}",
    )


@router.post("/needs/{need_id}/cancel")
async def cancel_need(request: Request, need_id: uuid.UUID) -> Response:
    """Cancel one of the community's needs, with the reason the record keeps."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        return {"reason": str(f.get("reason", "")).strip()}

    return await _submit(request, session, form, f"/needs/{need_id}/cancel", build, _community)


AMENDABLE = ("urgency", "volunteers_needed", "amount", "quantity", "deadline", "shift")
"""What `AmendNeed` may change (schemas/needs.py `NeedAmendment`); the form's fields are these,
prefixed `amend.` so that they never fill the form for posting a new need."""


def amend_field(name: str) -> str:
    """The amend form's field for a field the API or the form names ("shift.end" → the
    shift's day, "amount.amount_minor" → the amount); "" stays "" (names no field)."""
    if not name:
        return name
    top = name.split(".")[0]
    return f"amend.{'day' if top == 'shift' else top}"


@router.post("/needs/{need_id}/amend")
async def amend_need(request: Request, need_id: uuid.UUID) -> Response:
    """Change one of the community's open needs: its urgency, and by its kind the shift and
    volunteers needed, the amount, or the quantity, and the deadline."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")

    def build(f: FormData) -> dict[str, Any]:
        def got(name: str) -> str:
            return str(f.get(f"amend.{name}", "")).strip()

        body: dict[str, Any] = {}
        if got("urgency"):
            body["urgency"] = got("urgency")
        if got("day"):
            end = moment(got("day"), got("end"), "shift.end")
            body["shift"] = {"start": moment(got("day"), got("start"), "shift.start"), "end": end}
            body["deadline"] = end  # a shift's need ends with the shift, as when posted
        elif got("deadline"):
            body["deadline"] = moment(got("deadline"), "23:59", "deadline")
        for name in ("volunteers_needed", "quantity"):
            if got(name):
                if not got(name).isdigit():
                    raise BadForm(name, "error.number")
                body[name] = int(got(name))
        if got("amount"):
            body["amount"] = {"amount_minor": fen(got("amount"), "amount"), "currency": "CNY"}
        return body

    async def again(
        request: Request, session: Session, api: Api, status: Any, **extra: Any
    ) -> HTMLResponse:
        errors = {amend_field(k): v for k, v in extra.pop("errors", {}).items()}
        return await _community(
            request, session, api, status, errors=errors, amending=str(need_id), **extra
        )

    return await _submit(request, session, form, f"/needs/{need_id}", build, again, "PATCH")


@router.post("/matches/{match_id}/{action}")
async def act_on_match(request: Request, match_id: uuid.UUID, action: str) -> Response:
    """accept / decline (a volunteer), confirm / no-show (the need's community)."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    if action not in ("accept", "decline", "confirm", "no-show"):
        return render(request, "error.html", session, 404, message="error.not_found")

    def build(f: FormData) -> dict[str, Any] | None:
        if action != "confirm":
            return None
        minutes = str(f.get("minutes_served", "")).strip()
        if not minutes.isdigit():
            raise BadForm("minutes_served", "error.minutes")
        return {"minutes_served": int(minutes)}

    again = _community if session.principal.role is Role.COMMUNITY else _volunteer
    return await _submit(request, session, form, f"/matches/{match_id}/{action}", build, again)


def pledged_cells(me: dict[str, Any]) -> set[str]:
    """The grid cells of a volunteer's current pledge (its windows read back as weekday and
    part of the day), so the form shows what they offered last time."""
    cells = set()
    spec = me.get("spec") or {}
    for w in spec.get("availability", []) if isinstance(spec, dict) else []:
        try:
            start = datetime.fromisoformat(str(w["start"])).astimezone(ZONE)
        except (KeyError, ValueError):
            continue
        for slot, (begin, end) in SLOTS.items():
            if begin <= start.time() < end:
                cells.add(f"{start.weekday()}-{slot}")
    return cells


def tomorrow() -> str:
    """The default day of a new shift, in Nanjing."""
    return (datetime.now(ZONE) + timedelta(days=1)).date().isoformat()


def local_day(iso: str | None) -> str:
    """An ISO moment's date in Nanjing, as a date input wants it."""
    return datetime.fromisoformat(iso).astimezone(ZONE).date().isoformat() if iso else ""


def local_clock(iso: str | None) -> str:
    """An ISO moment's time of day in Nanjing, as a time input wants it ("09:30")."""
    return datetime.fromisoformat(iso).astimezone(ZONE).strftime("%H:%M") if iso else ""


def yuan(amount_minor: int | None) -> str:
    """Fen as the plain yuan a form field holds ("1200.50"): integer arithmetic, no float."""
    if amount_minor is None:
        return ""
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


templates.env.globals["tomorrow"] = tomorrow
templates.env.globals["local_day"] = local_day
templates.env.globals["local_clock"] = local_clock
templates.env.globals["yuan"] = yuan
templates.env.globals["newkey"] = lambda: str(uuid.uuid4())
"""Each rendered form carries its own Idempotency-Key: sent twice, it is written once."""
