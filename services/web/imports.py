"""The upload page: a community or social organisation imports its volunteers from a file.

`/imports` takes the file (CSV or .xlsx) and checks it through the API's dry run
(`POST /v1/imports/volunteers?dry_run=true`, in-process like every form): every bad row is
shown as a table with its line, column and reason in the page's language. The import button
posts the same file again (carried in the page, base64, so nothing is kept on the server) for
the real import; the new volunteers' sign-ins are shown once, as a table to print and a CSV to
download (a `data:` link: the tokens are in this page only, which is never cached).
docs/import.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from schemas.common import Role
from services.importing import reasons
from services.importing.columns import VOLUNTEER_COLUMNS
from services.importing.signins import csv_of
from services.web.i18n import Translator
from services.web.routes import _lang, _see_other, api_for, current, render
from services.web.sessions import Session, csrf_ok

router = APIRouter(include_in_schema=False)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MOST_SHOWN = 1000
"""Rows listed in the page's table of outcomes (every problem is listed)."""
EXAMPLES = {
    "ref": "JL-001",
    "pseudonym": "王师傅",
    "district": "鼓楼区",
    "street": "江东街道",
    "community": "金陵名人居社区",
    "skills": "驾驶、送餐",
    "availability": "周一至周五 09:00-12:00",
    "weekly_hour_limit": "8",
    "travel": "本区",
}
REGISTRARS = (Role.COMMUNITY, Role.SOCIAL_ORG)


def _page(request: Request, session: Session, status_code: int = 200, **context: Any) -> Response:
    columns = [(c.shown, c.required, EXAMPLES[c.field]) for c in VOLUNTEER_COLUMNS]
    allowed = session.principal.role in REGISTRARS
    return render(
        request, "imports.html", session, status_code, columns=columns, allowed=allowed, **context
    )


@router.get("/imports", response_class=HTMLResponse)
async def import_page(request: Request) -> Response:
    """The upload form, with the columns a file has."""
    session = await current(request)
    if session is None:
        return _see_other("/")
    return _page(request, session)


async def _checked(request: Request) -> tuple[Session | None, FormData | None, Response | None]:
    session = await current(request)
    if session is None:
        return None, None, _see_other("/")
    # the run form carries the file as a field: larger than Starlette's 1 MiB default
    limit = request.app.state.settings.max_import_bytes * 2
    form = await request.form(max_part_size=limit)
    if not csrf_ok(session, str(form.get("csrf", ""))):
        return session, None, render(request, "error.html", session, 403, message="error.csrf")
    return session, form, None


@router.post("/imports/check")
async def check(request: Request) -> Response:
    """The dry run of the uploaded file: every bad row, and what would be imported."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    return await _import(request, session, data, dry_run=True)


@router.post("/imports/run")
async def run(request: Request) -> Response:
    """The import of the file checked before; the sign-ins, once."""
    session, form, refused = await _checked(request)
    if refused is not None or session is None or form is None:
        return refused or _see_other("/")
    try:
        data = base64.b64decode(str(form.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        data = b""
    return await _import(request, session, data, dry_run=False)


async def _import(request: Request, session: Session, data: bytes, *, dry_run: bool) -> Response:
    t = Translator(_lang(request))
    if not data:
        return _page(request, session, 422, error=t("import.no_file"))
    kind = XLSX if data.startswith(b"PK\x03\x04") else "text/csv"
    async with api_for(request, session) as api:
        r = await api.upload(
            "/imports/volunteers", data, kind, dry_run=str(dry_run).lower(), lang=t.lang
        )
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code == 422 and "problems" in body:
        return _page(request, session, 422, problems=body["problems"])
    if r.status_code != 200:
        detail = body.get("detail", r.text[:300]) if isinstance(body, dict) else r.text[:300]
        status = r.status_code if 400 <= r.status_code < 500 else 503
        return _page(request, session, status, error=str(detail))
    outcomes = [
        o | {"label": reasons.text(f"status.{o['status']}", t.lang)}
        for o in body["outcomes"][:MOST_SHOWN]
    ]
    sign_ins = body["sign_ins"]
    return _page(
        request,
        session,
        report=body,
        problems=body["problems"],
        outcomes=outcomes,
        data=base64.b64encode(data).decode() if dry_run and body["would_create"] else "",
        sign_ins=sign_ins,
        sign_ins_csv=_csv_link(sign_ins) if sign_ins else "",
    )


def _csv_link(sign_ins: list[dict[str, str]]) -> str:
    """The sign-ins file (as `exchange import` writes it) as a data: URL."""
    rows = [(s["ref"], s["name"], s["id"], s["token"]) for s in sign_ins]
    return (
        "data:text/csv;charset=utf-8;base64,"
        + base64.b64encode(csv_of("volunteers", rows)).decode()
    )
