"""Bulk import over HTTP (issue #16, docs/import.md): the file is the request body.

`POST /v1/imports/orgs` (the exchange's operator) and `POST /v1/imports/volunteers` (a
community, street office or social organisation, for itself) take a CSV (UTF-8 or GB18030) or
an Excel .xlsx file as the body, up to `EXCHANGE_MAX_IMPORT_BYTES` (413 beyond). With
`?dry_run=true` nothing is written and the answer reports what would be done and every bad
row; without it the good rows are written and the bad ones reported. A file that cannot be
read at all (encoding, header, a personal-data column) is a 422 naming the line and column.
Reasons come in zh-CN, or in English with `?lang=en` or `Accept-Language: en`.

The answer carries each new volunteer's (or organisation's) sign-in once (`sign_ins`), never
cached (`Cache-Control: no-store`); with `Accept: text/csv` it is the sign-ins file itself
(UTF-8 with BOM), with the counts in `X-Import-*` headers.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from schemas.common import Role
from services import operator
from services.gateway.deps import Caller, OperatorCaller, Pool, require_role
from services.gateway.postings import unpublished
from services.importing import reasons
from services.importing.reading import read_table
from services.importing.reasons import FileRefused
from services.importing.rows import ZONE
from services.importing.signins import sign_ins_csv
from services.importing.store import Report, import_orgs, import_volunteers

router = APIRouter(prefix="/v1/imports", tags=["imports"])

NO_STORE = {"Cache-Control": "no-store"}
FILE_TYPES = (
    "text/csv",
    "text/plain",
    "application/csv",
    "application/vnd.ms-excel",  # what browsers on Windows call a .csv file
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/octet-stream",
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RowProblem(BaseModel):
    """A bad row (or, at line 0, the file): where, and why in the caller's language."""

    line: int
    column: str
    code: str = Field(description="a stable key for the reason, e.g. `row.skill`")
    reason: str


class RowOutcome(BaseModel):
    """A good row: `created`, `unchanged` (already there), `differs` (already there, the row
    changed since: not applied) or, in a dry run, `would_create`."""

    line: int
    key: str = Field(description="the row's ref (volunteers) or name (organisations)")
    status: str
    id: str | None


class SignInRow(BaseModel):
    """A new volunteer's or organisation's token: shown in this answer only."""

    ref: str = Field(description="the volunteer's ref, or the organisation's kind")
    name: str
    id: str
    token: str


class ImportReport(BaseModel):
    """What the import did (or, in a dry run, would do) with every row of the file."""

    what: str
    dry_run: bool
    rows: int
    encoding: str = Field(description="`utf-8`, `utf-8-sig`, `gb18030` or `xlsx`")
    created: int
    would_create: int
    unchanged: int
    differs: int
    refused: int = Field(description="bad rows, each listed in `problems`")
    problems: list[RowProblem]
    outcomes: list[RowOutcome]
    sign_ins: list[SignInRow]


FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the file: CSV (UTF-8, with or without BOM, or GB18030) or Excel .xlsx",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report (JSON), or with `Accept: text/csv` the sign-ins file.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    415: {"description": "The body is not a CSV or .xlsx file."},
}

DryRun = Annotated[bool, Query(description="report what would be done; write nothing")]
Lang = Annotated[str | None, Query(description="`zh-CN` (default) or `en`")]
AcceptLanguage = Annotated[str | None, Header(alias="Accept-Language")]


async def _file(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in FILE_TYPES:
        raise HTTPException(415, reasons.text("file.type", "en"))
    return await request.body()


def _lang(lang: str | None, accept: str | None) -> str:
    return reasons.pick(lang or (accept or "").split(",")[0].strip())


def _refused(exc: FileRefused, lang: str) -> JSONResponse:
    detail = [
        {
            "field": f"line {p.line}" + (f", column {p.column}" if p.column else ""),
            "reason": p.reason(lang),
            "value_type": "string",
        }
        for p in exc.problems
    ]
    problems = [p.as_dict(lang) for p in exc.problems]
    return JSONResponse(status_code=422, content={"detail": detail, "problems": problems})


def _answer(request: Request, report: Report, lang: str) -> Response:
    counts = report.counts()
    if "text/csv" in request.headers.get("accept", "") and not report.dry_run:
        headers = {f"X-Import-{k.replace('_', '-').title()}": str(v) for k, v in counts.items()}
        return Response(
            sign_ins_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={
                **NO_STORE,
                **headers,
                "Content-Disposition": f'attachment; filename="sign-ins-{report.what}.csv"',
            },
        )
    return JSONResponse(report.as_dict(lang), headers=NO_STORE)


@router.post("/orgs", response_model=ImportReport, responses=RESPONSES, openapi_extra=FILE_BODY)
async def import_organisations(
    request: Request,
    pool: Pool,
    who: OperatorCaller,
    dry_run: DryRun = False,
    lang: Lang = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    """Register the organisations of a file (the operator): columns 名称/name, 类型/kind,
    区/district, 街道/street. A name already registered is `unchanged`, never a second
    organisation; the new ones' tokens are in `sign_ins`, once."""
    language = _lang(lang, accept_language)
    data = await _file(request)
    try:
        table = await asyncio.to_thread(read_table, data)
        async with pool.acquire() as conn:
            report = await import_orgs(conn, operator.actor_of(who), table, dry_run=dry_run)
    except FileRefused as exc:
        return _refused(exc, language)
    return _answer(request, report, language)


@router.post(
    "/volunteers", response_model=ImportReport, responses=RESPONSES, openapi_extra=FILE_BODY
)
async def import_volunteer_file(
    request: Request,
    pool: Pool,
    who: Caller,
    dry_run: DryRun = False,
    lang: Lang = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    """Register the volunteers of a file with their pledges, for your organisation (a
    community or social organisation), exactly as `POST /v1/volunteers` and `PUT
    /v1/volunteers/{id}/pledge` would one by one. Columns: 编号/ref (your own key of the row:
    a second run of the file changes nothing), 称呼/pseudonym, 区/district, 街道/street,
    社区/community, 技能/skills, 可服务时间/availability, 每周小时上限/weekly_hours,
    出行范围/travel (docs/import.md)."""
    require_role(who, Role.COMMUNITY, Role.SOCIAL_ORG)
    language = _lang(lang, accept_language)
    data = await _file(request)
    relay = request.app.state.postings.relay

    def published(rows: list[Any]) -> None:
        for row in rows:
            relay.hand_over(unpublished(row))
        request.app.state.accepted += len(rows)

    try:
        table = await asyncio.to_thread(read_table, data)  # openpyxl takes a while: off the loop
        report = await import_volunteers(
            pool,
            who,
            table,
            dry_run=dry_run,
            today=datetime.now(ZONE).date(),
            published=published,
        )
    except FileRefused as exc:
        return _refused(exc, language)
    return _answer(request, report, language)
