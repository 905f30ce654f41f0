"""The exchange's operator over HTTP (issue #16): register organisations, list them, suspend
and reinstate them, re-issue and revoke their tokens.

Only an operator's token (`exchange operators create`) is let in; every other caller gets 403.
Each route is a thin client of `services.operator`, the code path `exchange orgs …` uses too,
so both write the same state and the same events (organisations.events) in one transaction.
A route that stops tokens (suspend, rotate, revoke) also drops this process's cached tokens
before it answers; other gateways drop theirs when PostgreSQL tells them (NOTIFY).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from schemas.common import Name, PlaceName
from schemas.messages import OrgKind
from services import operator
from services.gateway.deps import OperatorCaller, Pool
from services.identity import OrganisationExists

router = APIRouter(prefix="/v1/orgs", tags=["operator"])

NO_STORE = {"Cache-Control": "no-store"}
"""Answers that carry a token are never kept by a cache."""


class OrgRegistration(BaseModel):
    """An organisation to register: its kind, name, and where it is (district, street)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: OrgKind
    name: Name
    district: PlaceName
    street: PlaceName | None = None


class OrgListed(BaseModel):
    """An organisation as the operator sees it; `status` is active, suspended or no token."""

    org_id: uuid.UUID
    kind: str
    name: str
    district: str
    street: str | None
    status: str
    created_at: datetime


def _no_such() -> HTTPException:
    return HTTPException(404, "no such organisation")


@router.post("", status_code=201)
async def register(body: OrgRegistration, pool: Pool, who: OperatorCaller) -> JSONResponse:
    """Register an organisation; the answer carries its token, once. A name already taken,
    or one that reads the same, is refused (409 naming `name` and the existing organisation):
    never a second organisation, never a second token."""
    async with pool.acquire() as conn:
        try:
            org_id, token = await operator.register(
                conn, operator.actor_of(who), body.kind, body.name, body.district, body.street
            )
        except OrganisationExists as exc:
            existing = exc.existing
            return JSONResponse(
                status_code=409,
                content={
                    "detail": [{"field": "name", "reason": str(exc), "value_type": "string"}],
                    "existing_org_id": str(existing["org_id"]),
                },
            )
    return JSONResponse(
        status_code=201,
        content={"org_id": str(org_id), "kind": body.kind.value, "token": token},
        headers=NO_STORE,
    )


@router.get("")
async def list_organisations(pool: Pool, who: OperatorCaller) -> list[OrgListed]:
    """Every organisation, oldest first, with its status."""
    return [OrgListed(**vars(o)) for o in await operator.organisations(pool)]


async def _suspension(
    request: Request, pool: Pool, who: OperatorCaller, org_id: uuid.UUID, suspend: bool
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        try:
            changed = await operator.set_suspended(conn, operator.actor_of(who), org_id, suspend)
        except LookupError:
            raise _no_such() from None
    request.app.state.principals.forget(org_id)  # this process: before the answer
    return {
        "org_id": str(org_id),
        "status": "suspended" if suspend else "reinstated",
        "changed": changed,
    }


@router.post("/{org_id}/suspend")
async def suspend(
    request: Request, org_id: uuid.UUID, pool: Pool, who: OperatorCaller
) -> dict[str, Any]:
    """Suspend an organisation: its every request is refused (403) from this answer on, its
    web sessions too, until it is reinstated. Its tokens are kept. Suspending a suspended
    organisation changes nothing (`changed: false`) and records nothing."""
    return await _suspension(request, pool, who, org_id, suspend=True)


@router.post("/{org_id}/reinstate")
async def reinstate(
    request: Request, org_id: uuid.UUID, pool: Pool, who: OperatorCaller
) -> dict[str, Any]:
    """Lift a suspension: the organisation's tokens that were not revoked work again."""
    return await _suspension(request, pool, who, org_id, suspend=False)


@router.post("/{org_id}/tokens")
async def rotate(
    request: Request, org_id: uuid.UUID, pool: Pool, who: OperatorCaller
) -> JSONResponse:
    """Issue the organisation a new token, in this answer only; every earlier one stops at
    once. A retry rotates again: the token of the latest answer is the one that works."""
    async with pool.acquire() as conn:
        try:
            token = await operator.rotate(conn, operator.actor_of(who), org_id)
        except LookupError:
            raise _no_such() from None
    request.app.state.principals.forget(org_id)
    return JSONResponse({"org_id": str(org_id), "token": token}, headers=NO_STORE)


@router.delete("/{org_id}/tokens")
async def revoke(
    request: Request, org_id: uuid.UUID, pool: Pool, who: OperatorCaller
) -> dict[str, Any]:
    """Stop every token of the organisation at once; it acts again only after a rotation."""
    async with pool.acquire() as conn:
        try:
            revoked = await operator.revoke(conn, operator.actor_of(who), org_id)
        except LookupError:
            raise _no_such() from None
    request.app.state.principals.forget(org_id)
    return {"org_id": str(org_id), "tokens_revoked": revoked}
