"""The auditor's reports over HTTP, read-only: as-of, trail and disclosure (JSON, CSV, HTML).

Only the auditor role may call them (403 otherwise): a trail names volunteers by pseudonym and
donors by label, which only auditors and owners may see, and one route serving every fund
cannot check ownership per fund cheaply. The computations are the pure modules the command
line uses (services/audit/reports)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from schemas.common import Moment, Role
from services.audit.reports import asof, trail
from services.audit.reports import disclosure as d
from services.audit.reports.api_data import disclosure_report
from services.audit.reports.reading import load_books
from services.gateway.deps import Caller, Pool, require_role
from services.gateway.openapi import DISCLOSURE

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/as-of")
async def get_as_of(
    pool: Pool,
    who: Caller,
    at: Annotated[
        Moment, Query(description="ISO 8601 with its offset (e.g. +08:00), in 2000–2099")
    ],
) -> dict[str, Any]:
    """Balances, need statuses and volunteer minutes of events recorded at or before `at`."""
    require_role(who, Role.AUDITOR)
    books, _ = await load_books(pool, at)
    return asof.as_of(books, at).to_json()


@router.get("/trail")
async def get_trail(
    pool: Pool,
    who: Caller,
    donation: uuid.UUID | None = None,
    fund: uuid.UUID | None = None,
    need: uuid.UUID | None = None,
    volunteer: uuid.UUID | None = None,
) -> list[dict[str, str | None]]:
    """Every step of exactly one donation, fund, need or volunteer."""
    require_role(who, Role.AUDITOR)
    given = {"donation": donation, "fund": fund, "need": need, "volunteer": volunteer}
    if sum(x is not None for x in given.values()) != 1:
        # each parameter concerned, in the shape of every other 422: all four when none was
        # given, the ones given when several were
        named = [k for k, v in given.items() if v is not None] or list(given)
        reason = "give exactly one of donation, fund, need, volunteer"
        raise HTTPException(
            422,
            [
                {
                    "field": f"query.{k}",
                    "reason": reason,
                    "value_type": "string" if given[k] is not None else "missing",
                }
                for k in named
            ],
        )
    books, events = await load_books(pool)
    try:
        steps = trail.trail(
            books, events, donation=donation, fund=fund, need=need, volunteer=volunteer
        )
    except KeyError:
        raise HTTPException(404, "no such donation, fund, need or volunteer") from None
    return trail.to_json(steps)


@router.get("/disclosure", response_model=None, response_class=HTMLResponse, responses=DISCLOSURE)
async def get_disclosure(
    pool: Pool,
    who: Caller,
    fund: uuid.UUID,
    quarter: Annotated[str, Query(pattern=d.QUARTER_PATTERN, description="e.g. 2026Q4")],
    format: Literal["csv", "html"] = "html",
) -> Response:
    """A fund's quarterly public report, as a CSV download or an HTML page."""
    require_role(who, Role.AUDITOR)
    try:
        rep = await disclosure_report(pool, fund, quarter)
    except KeyError:
        raise HTTPException(404, "no such fund") from None
    name = f"disclosure-{fund}-{quarter}"
    if format == "csv":
        return Response(
            d.to_csv(rep),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return HTMLResponse(d.to_html(rep))
