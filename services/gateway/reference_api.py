"""Reference data over HTTP (issue #16): read the skills and need categories, define new ones,
retire them; and the JSON Schemas of the messages with the lists filled in.

Reading is for anyone signed in. Defining and retiring: the exchange's operator for the whole
city or any district, a street office for its own district; anyone else 403. Each write is a
thin client of `services.reference` (one transaction: the table row and the event through the
outbox); refusals write nothing.

The gateway checks every posting's codes against the lists (`check_codes`), from a cache that
every change empties: this process's at once, other gateways' when PostgreSQL tells them
(NOTIFY on the token cache's listening connection). While that connection is down nothing is
cached, so a retired code can never stay usable on a gateway that missed the news.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from schemas import export
from schemas.common import PlaceName
from schemas.envelope import Actor
from schemas.messages import ALL_MESSAGES
from schemas.reference import Label, TermCode
from services import reference
from services.domain.reference import PLURAL, Term, Terms, define_refusal, posting_problems
from services.gateway.deps import Caller, Pool
from services.gateway.screening import personal_data_problems
from services.gateway.tokens import TokenCache
from services.identity import Principal
from services.operator import actor_of

router = APIRouter(prefix="/v1", tags=["reference"])

KINDS = {plural: kind for kind, plural in PLURAL.items()}
ListName = Annotated[str, Path(pattern="^(skills|categories)$", description="skills or categories")]

log = logging.getLogger(__name__)


class ReferenceCache:
    """The lists, loaded from PostgreSQL and kept until a change is heard."""

    def __init__(self, listener: TokenCache, pool: asyncpg.Pool) -> None:
        self.listener = listener
        self.pool = pool
        self._terms: Terms | None = None
        self._generation = 0
        self._refreshing: asyncio.Task[None] | None = None
        self.last: Terms | None = None
        """The lists as last loaded, for labels and the web app's forms: reloaded in the
        background after every change heard (a label a moment old is harmless; what postings
        may name is always decided from `terms`)."""
        listener.channels[reference.REFERENCE_CHANNEL] = self.drop

    def drop(self, _payload: str = "") -> None:
        """Forget the lists (a change was made, heard, or may have been missed)."""
        self._terms = None
        self._generation += 1
        with contextlib.suppress(RuntimeError):  # no running loop: loaded on next use
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        """Reload in the background; a database that is away now is asked again on next use
        (the failure is expected while PostgreSQL restarts, and nobody waits for this)."""
        try:
            await self.terms()
        except Exception as exc:
            log.info("reference lists not reloaded", extra={"error": repr(exc)})

    async def terms(self) -> Terms:
        """The lists as they stand (cached only while changes can be heard)."""
        if self._terms is not None and self.listener.listening:
            return self._terms
        generation = self._generation
        terms = await reference.load(self.pool)
        self.last = terms
        if generation == self._generation and self.listener.listening:
            self._terms = terms
        return terms


async def current_terms(request: Request) -> Terms:
    """The lists, for this request."""
    cache: ReferenceCache = request.app.state.reference
    return await cache.terms()


async def check_codes(request: Request, body: BaseModel) -> None:
    """422 naming every field of a need, pledge or fund whose code is unknown, retired, or
    for another district (nothing is written)."""
    problems = posting_problems(await current_terms(request), body)
    if problems:
        raise HTTPException(422, problems)


class TermOut(BaseModel):
    """A term as the lists show it."""

    code: str
    label_zh: str
    label_en: str
    district: str | None
    """The district the term is for; null: the whole city."""
    retired: bool


class TermDefinition(BaseModel):
    """A term to add: a code never used in its list, its labels, and the district it is for
    (omit for the whole city; a street office's terms are for its own district)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: TermCode
    label_zh: Label
    label_en: Label
    district: PlaceName | None = None


def _out(term: Term) -> TermOut:
    return TermOut(
        code=term.code,
        label_zh=term.label_zh,
        label_en=term.label_en,
        district=term.district,
        retired=term.retired,
    )


@router.get("/reference/{list_name}")
async def list_terms(
    request: Request,
    list_name: ListName,
    who: Caller,
    district: Annotated[
        PlaceName | None, Query(description="only terms usable there (city-wide and its own)")
    ] = None,
    retired: Annotated[bool, Query(description="include retired terms")] = False,
) -> list[TermOut]:
    """A list (`skills` or `categories`) in the order its terms were defined: what postings
    may name, with labels."""
    terms = await current_terms(request)
    return [_out(t) for t in terms.listed(KINDS[list_name], district, retired)]


async def _may_act(pool: Pool, who: Principal, district: str | None) -> str | None:
    """The district the caller acts for, after checking they may (403 otherwise)."""
    own = None if who.is_operator else await reference.district_of(pool, who.id)
    if not who.is_operator and district is None:
        district = own  # a street office's terms are for its own district
    refusal = define_refusal(who.kind, who.is_operator, own, district)
    if refusal:
        raise HTTPException(403, refusal)
    return district


@router.post("/reference/{list_name}", status_code=201)
async def define_term(
    request: Request, list_name: ListName, body: TermDefinition, pool: Pool, who: Caller
) -> JSONResponse:
    """Add a term to a list: postings may name it from this answer on. A code already in the
    list, live or retired, is refused (409 naming `code`): codes are never reused."""
    district = await _may_act(pool, who, body.district)
    problems = personal_data_problems(body, None)  # labels are public, and on the log for good
    if problems:
        raise HTTPException(422, problems)
    kind = KINDS[list_name]
    term = Term(kind, body.code, body.label_zh, body.label_en, district)
    async with pool.acquire() as conn:
        try:
            await reference.define(conn, actor_of_caller(who), term)
        except reference.TermExists as exc:
            return JSONResponse(status_code=409, content={"detail": str(exc), "field": "code"})
    request.app.state.reference.drop()  # this process: before the answer
    return JSONResponse(status_code=201, content=_out(term).model_dump())


@router.post("/reference/{list_name}/{code}/retire")
async def retire_term(
    request: Request,
    list_name: ListName,
    code: Annotated[str, Path(pattern="^[a-z][a-z0-9_]{1,39}$")],
    pool: Pool,
    who: Caller,
) -> dict[str, Any]:
    """Retire a term: new postings may no longer name it; what was accepted with it keeps it.
    Retiring a retired term changes nothing (`changed: false`)."""
    kind = KINDS[list_name]
    term = (await reference.load(pool)).get(kind, code)
    if term is None:
        raise HTTPException(404, f"no such {kind.value}")
    if term.district is None:
        if not who.is_operator:
            raise HTTPException(403, "only the exchange's operator may retire a city-wide term")
    else:
        await _may_act(pool, who, term.district)
    async with pool.acquire() as conn:
        changed = await reference.retire(conn, actor_of_caller(who), kind, code)
    request.app.state.reference.drop()
    return {"kind": kind.value, "code": code, "retired": True, "changed": changed}


def actor_of_caller(who: Principal) -> Actor:
    """The actor a term's event carries: the operator (role system) or the street office."""
    return actor_of(who) if who.is_operator else Actor(org_id=str(who.id), role=who.role)


CURRENT = {m.TYPE: m for m in ALL_MESSAGES}


def filled(schema: Any, terms: Terms) -> Any:
    """`schema` with every code that names a list (`x-reference-list`) limited to the list's
    live codes (`enum`). District rules are not expressible here: the gateway checks them."""
    if isinstance(schema, dict):
        out = {k: filled(v, terms) for k, v in schema.items()}
        plural = schema.get("x-reference-list")
        if plural in KINDS:
            out["enum"] = [t.code for t in terms.listed(KINDS[plural])]
        return out
    if isinstance(schema, list):
        return [filled(v, terms) for v in schema]
    return schema


@router.get("/schemas/{event_type}")
async def message_schema(
    request: Request,
    event_type: Annotated[str, Path(max_length=80, description="a message type, e.g. PostNeed")],
    who: Caller,
) -> dict[str, Any]:
    """The JSON Schema of a message type's current version, as `schemas/jsonschema/` has it,
    with every skill and category limited to the codes live now (`enum`): what the exchange
    accepts today. The static files accept any well-formed code, since the lists grow."""
    cls = CURRENT.get(event_type.removesuffix(".json"))
    if cls is None:
        raise HTTPException(404, "no such message type")
    schema = copy.deepcopy(export.message_schema(cls))
    return dict(filled(schema, await current_terms(request)))
