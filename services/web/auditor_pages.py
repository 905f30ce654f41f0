"""The auditor's pages: health at a glance, trails, as-of, disclosure and replay.

Who may open them is decided by the API's own rule (`services.gateway.deps.require_role`, the
function every /v1/audit route calls): signed out goes to the sign-in page, any role but
auditor gets 403. The reports come from the /v1/audit routes, called in-process as every page
does (services/web/api.py), so the API checks the role a second time for them; the long checks
run as jobs (services/web/jobs.py) whose progress the page re-reads (`data-refresh`).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from schemas.common import Role
from services.gateway.deps import require_role
from services.web import auditor_data as data
from services.web.api import field_errors
from services.web.i18n import ZONE
from services.web.jobs import KINDS, JobBoard, Work
from services.web.routes import PAGE_HEADERS, api_for, current, render, templates
from services.web.sessions import Session, csrf_ok

router = APIRouter(prefix="/audit", include_in_schema=False)
SUBJECTS = ("donation", "fund", "need", "volunteer")
"""What a trail can start from (`GET /v1/audit/trail`)."""
HEALTH_CHECKS = ("verify", "sequences", "invariants")
"""The jobs on the health page (replay has its own page)."""


def board(request: Request) -> JobBoard:
    """The gateway's jobs (made at first use: one board per process)."""
    state = request.app.state
    if getattr(state, "audit_jobs", None) is None:
        state.audit_jobs = JobBoard()
    jobs: JobBoard = state.audit_jobs
    return jobs


async def auditor(request: Request) -> tuple[Session | None, Response | None]:
    """The auditor's session, or the answer that turns the visitor away."""
    session = await current(request)
    if session is None:
        return None, RedirectResponse("/", status_code=303)
    try:
        require_role(session.principal, Role.AUDITOR)
    except HTTPException:
        return session, render(request, "error.html", session, 403, message="error.auditors_only")
    return session, None


def _work(request: Request, kind: str) -> Work:
    settings = request.app.state.settings
    dsn = settings.require_database()
    if kind == "verify":
        return data.verify_work(dsn, settings)
    if kind == "invariants":
        return data.invariants_work(dsn)
    if kind == "sequences":
        return data.sequences_work(dsn)
    return data.replay_work(dsn)


@router.get("", response_class=HTMLResponse)
async def health(request: Request) -> Response:
    """The latest signed checkpoint (checked as the page is read) and the last run of each
    check, with a button to run it again."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    settings = request.app.state.settings
    jobs = board(request).latest
    return render(
        request,
        "audit_health.html",
        session,
        checkpoint=await data.checkpoint_status(request.app.state.pool, settings),
        jobs=[(k, jobs.get(k)) for k in HEALTH_CHECKS],
        section="health",
    )


@router.post("/checks/{kind}")
async def run_check(request: Request, kind: str) -> Response:
    """Start a check (or find the one already running) and go back to where it is shown."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    form = await request.form()
    if not csrf_ok(session, str(form.get("csrf", ""))):
        return render(request, "error.html", session, 403, message="error.csrf")
    if kind not in KINDS:
        return render(request, "error.html", session, 404, message="error.not_found")
    board(request).start(kind, _work(request, kind))
    back = "/audit/replay" if kind == "replay" else f"/audit#check-{kind}"
    return RedirectResponse(back, status_code=303)


@router.get("/replay", response_class=HTMLResponse)
async def replay(request: Request) -> Response:
    """Start a replay and watch it: are balances and matching decisions what live says?"""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    job = board(request).latest.get("replay")
    return render(request, "audit_replay.html", session, job=job, section="replay")


@router.get("/trail", response_class=HTMLResponse)
async def trail(request: Request, subject: str = "", id: str = "") -> Response:
    """Every step of one donation, fund, need or volunteer, each linked to its event."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    steps: list[dict[str, Any]] | None = None
    errors: dict[str, str] = {}
    status = 200
    async with api_for(request, session) as api:
        funds = (await api.get("/funds", limit=200)).json().get("items", [])
        if subject and id:
            if subject not in SUBJECTS:
                subject = "fund"
            r = await api.get("/audit/trail", **{subject: id.strip()})
            if r.status_code == 200:
                steps = r.json()
            else:
                status = r.status_code if 400 <= r.status_code < 500 else 503
                found = field_errors(r)
                errors = {"id": next(iter(found.values()), "")}
                if r.status_code == 404:
                    errors = {"id": "error.no_subject"}
    return render(
        request,
        "audit_trail.html",
        session,
        status,
        steps=steps,
        subjects=SUBJECTS,
        funds=funds,
        values={"subject": subject or "donation", "id": id},
        errors=errors,
        section="trail",
    )


@router.get("/events/{event_id}", response_class=HTMLResponse)
async def event(request: Request, event_id: uuid.UUID) -> Response:
    """One archived event: its JSON, and the proof that it is in the signed log."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    async with api_for(request, session) as api:
        r = await api.get(f"/audit/events/{event_id}")
    if r.status_code != 200:
        return render(request, "error.html", session, r.status_code, message="error.not_found")
    found = r.json()
    shown = json.dumps(found["value"], ensure_ascii=False, indent=2, sort_keys=True)
    return render(request, "audit_event.html", session, ev=found, shown=shown, section="trail")


def end_of_minute(at: str) -> datetime:
    """The moment a person means by a minute (`2026-12-03T14:05`, Nanjing time): the end of it,
    so that what happened during 14:05 is included, as the field's default ("now", to the
    minute) must include what just happened. A moment given with seconds is taken as it is."""
    moment = datetime.fromisoformat(at).replace(tzinfo=ZONE)
    if len(at.strip()) <= len("2026-12-03T14:05"):
        moment += timedelta(minutes=1, microseconds=-1)
    return moment


@router.get("/as-of", response_class=HTMLResponse)
async def as_of(request: Request, at: str = "") -> Response:
    """Balances and statuses at a past moment, given in Nanjing time."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    report, errors, status = None, {}, 200
    if at:
        try:
            moment = end_of_minute(at)
        except ValueError:
            errors, status = {"at": "error.moment"}, 422
        else:
            async with api_for(request, session) as api:
                r = await api.get("/audit/as-of", at=moment.isoformat())
            if r.status_code == 200:
                report = r.json()
            else:
                errors = {"at": next(iter(field_errors(r).values()), "")}
                status = r.status_code if 400 <= r.status_code < 500 else 503
    now = datetime.now(ZONE).strftime("%Y-%m-%dT%H:%M")
    return render(
        request,
        "audit_asof.html",
        session,
        status,
        report=report,
        values={"at": at or now},
        errors=errors,
        section="asof",
    )


def this_quarter() -> str:
    """The current quarter in Nanjing, as the disclosure's form wants it ("2026Q4")."""
    now = datetime.now(ZONE)
    return f"{now.year}Q{(now.month - 1) // 3 + 1}"


async def _disclosure(
    request: Request, session: Session, fund: str, quarter: str
) -> tuple[Any, dict[str, str], int, list[dict[str, Any]]]:
    async with api_for(request, session) as api:
        funds = (await api.get("/funds", limit=200)).json().get("items", [])
    if not fund:
        return None, {}, 200, funds
    if not re.fullmatch(data.QUARTER_PATTERN, quarter):
        return None, {"quarter": "error.quarter"}, 422, funds
    try:
        fund_id = uuid.UUID(fund)
        rep = await data.disclosure(request.app.state.pool, fund_id, quarter)
    except (ValueError, KeyError):
        return None, {"fund": "error.no_subject"}, 404, funds
    return rep, {}, 200, funds


@router.get("/disclosure", response_class=HTMLResponse)
async def disclosure(request: Request, fund: str = "", quarter: str = "") -> Response:
    """A fund's quarterly report as a page, with its CSV and a printable view."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    quarter = quarter or this_quarter()
    rep, errors, status, funds = await _disclosure(request, session, fund, quarter)
    return render(
        request,
        "audit_disclosure.html",
        session,
        status,
        rep=rep,
        funds=funds,
        values={"fund": fund, "quarter": quarter},
        errors=errors,
        section="disclosure",
    )


@router.get("/disclosure/print", response_class=HTMLResponse)
async def disclosure_print(request: Request, fund: str = "", quarter: str = "") -> Response:
    """The same report laid out for paper: no navigation, no forms."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    rep, _, status, _ = await _disclosure(request, session, fund, quarter or this_quarter())
    if rep is None:
        return render(request, "error.html", session, status or 404, message="error.not_found")
    return render(request, "audit_disclosure_print.html", session, rep=rep, printing=True)


@router.get("/disclosure.csv")
async def disclosure_csv(request: Request, fund: str = "", quarter: str = "") -> Response:
    """The report as the CSV the command writes (UTF-8 with a byte-order mark, for Excel)."""
    session, refused = await auditor(request)
    if refused is not None or session is None:
        return refused or RedirectResponse("/", status_code=303)
    rep, _, status, _ = await _disclosure(request, session, fund, quarter or this_quarter())
    if rep is None:
        return render(request, "error.html", session, status or 404, message="error.not_found")
    name = f"disclosure-{rep.fund_id}-{rep.quarter}.csv"
    return Response(
        data.to_csv(rep),
        media_type="text/csv; charset=utf-8",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


def day_before(moment: datetime) -> str:
    """The last day of a period that ends at `moment` (exclusive), in Nanjing."""
    return (moment.astimezone(ZONE) - timedelta(days=1)).date().isoformat()


templates.env.globals["day_before"] = day_before
