"""The public transparency site, under /public: no sign-in, nothing about a person.

What is shown is computed by services/web/transparency.py from facts that carry no titles,
descriptions, pseudonyms or donor labels (docs/transparency.md lists exactly what is public).
The pages are rendered without the visitor's session even when they have one, so they are the
same for everybody but for the language, and may be cached for a minute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from services.web import auditor_data as data
from services.web.charts import bar_chart
from services.web.i18n import Translator, terms_of
from services.web.routes import _lang, render
from services.web.transparency import OTHER, Cell, fund_figures, totals

router = APIRouter(prefix="/public", include_in_schema=False)
FRESH_SECONDS = 10
"""The facts are folded from the archive again at most this often (and only when it grew)."""
CACHE = "public, max-age=60"
"""A minute in a browser or a proxy: the figures move slowly, the fold is not free."""


async def facts(request: Request) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """The public facts, folded again when the archive has grown and FRESH_SECONDS passed."""
    state = request.app.state
    pool = request.app.state.pool
    seq = await pool.fetchval("SELECT coalesce(max(archive_seq), 0) FROM archive")
    kept = getattr(state, "public_facts", None)
    now = time.monotonic()
    if kept is None or (kept[0] != seq and now - kept[1] >= FRESH_SECONDS):
        kept = (seq, now, await data.public_facts(pool))
        state.public_facts = kept
    found: tuple[list[Any], list[Any], list[Any], list[Any]] = kept[2]
    return found


def _public(response: HTMLResponse) -> HTMLResponse:
    response.headers["Cache-Control"] = CACHE
    response.headers["Vary"] = "Cookie"  # the language is the cx_lang cookie
    return response


def named(cells: list[Cell], t: Translator, other: str, label: Callable[[str], str]) -> list[Any]:
    """Cells with the name a page shows (a category's words, "other districts")."""
    return [(t(other) if c.name == OTHER else label(c.name), c) for c in cells]


def hours(t: Translator, minutes: int) -> str:
    """Minutes as hours with one decimal, for the language."""
    from babel.numbers import format_decimal

    return t("public.hours_value", n=format_decimal(round(minutes / 60, 1), locale=t.locale))


@router.get("", response_class=HTMLResponse)
async def front(request: Request) -> Response:
    """Totals of the whole exchange, by district, by category and by month, as tables and
    charts; the funds; the exchange's public key."""
    t = Translator(_lang(request), terms_of(request.app.state))
    needs, matches, donations, funds = await facts(request)
    tot = totals(needs, matches, donations)
    cat = partial(lambda n: t(f"category.{n}"))
    districts = named(tot.by_district, t, "public.other_districts", str)
    categories = named(tot.by_category, t, "public.other_categories", cat)
    by_hours = partial(hours, t)
    money, per_hour = t.money, by_hours
    charts: list[Markup] = [
        bar_chart(rows, t(f"public.chart.{key}"), fmt, key.replace("_", "-"))
        for key, rows, fmt in (
            ("paid_district", [(n, c.paid) for n, c in districts], money),
            ("hours_district", [(n, c.minutes) for n, c in districts], per_hour),
            ("paid_category", [(n, c.paid) for n, c in categories], money),
            ("received_month", [(m.month, m.received) for m in tot.months], money),
            ("paid_month", [(m.month, m.paid) for m in tot.months], money),
            ("hours_month", [(m.month, m.minutes) for m in tot.months], per_hour),
        )
    ]
    settings = request.app.state.settings
    return _public(
        render(
            request,
            "public.html",
            None,
            tot=tot,
            districts=districts,
            categories=categories,
            charts=[c for c in charts if c],
            hours=by_hours,
            funds=sorted(funds, key=lambda f: f.name),
            key=data.published_key(settings),
            handovers=await data.handovers(request.app.state.pool),
            latest=next(iter(await data.signed_checkpoints(request.app.state.pool)), None),
            public=True,
        )
    )


@router.get("/funds/{fund_id}", response_class=HTMLResponse)
async def fund(request: Request, fund_id: uuid.UUID) -> Response:
    """One fund: its earmarks, what it received, what it paid for by category and district."""
    t = Translator(_lang(request), terms_of(request.app.state))
    needs, matches, donations, funds = await facts(request)
    found = next((f for f in funds if f.fund_id == fund_id), None)
    if found is None:
        return render(request, "error.html", None, 404, message="error.not_found", public=True)
    figures = fund_figures(found, needs, matches, donations)
    cat = partial(lambda n: t(f"category.{n}"))
    return _public(
        render(
            request,
            "public_fund.html",
            None,
            fig=figures,
            categories=named(figures.by_category, t, "public.other_categories", cat),
            districts=named(figures.by_district, t, "public.other_districts", str),
            hours=partial(hours, t),
            public=True,
        )
    )


@router.get("/checkpoints.json")
async def checkpoints(request: Request) -> Response:
    """Every signed checkpoint (newest first) and every key hand-over, for anyone to keep: a
    copy outside the exchange's database that a later rewrite of the archive cannot match
    (docs/transparency.md). Public, no sign-in."""
    pool = request.app.state.pool
    body = {
        "checkpoints": await data.signed_checkpoints(pool),
        "key_rotations": await data.rotation_statements(pool),
    }
    return _public_json(body)


@router.get("/checkpoints/{tree_size}.json")
async def one_checkpoint(request: Request, tree_size: int) -> Response:
    """One signed checkpoint, in the shape `exchange audit verify --held FILE` reads."""
    found = await data.signed_checkpoints(request.app.state.pool, tree_size)
    if not found:
        return JSONResponse(
            {"detail": [{"loc": ["path", "tree_size"], "msg": "no checkpoint of this size"}]},
            status_code=404,
        )
    return _public_json(found[0])


def _public_json(body: Any) -> Response:
    response = JSONResponse(body)
    response.headers["Cache-Control"] = CACHE
    return response
