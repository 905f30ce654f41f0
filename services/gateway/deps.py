"""What every route needs: the caller's identity, the write path, and ownership checks.

Refusals here are 401 (who are you?) or 403 (not yours / not your role), with a reason, and
happen before anything is written.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.common import Role
from services.gateway.limits import RateLimiter
from services.gateway.postings import Postings
from services.gateway.tokens import TokenCache, principal_of
from services.gateway.visibility import Resource, Visibility
from services.identity import Principal

SUSPENDED = (
    "this organisation is suspended by the exchange's operator: its token is refused until "
    "the operator reinstates it"
)
"""The reason every request of a suspended organisation gets (403), API and web app alike."""

READ_METHODS = ("GET", "HEAD", "OPTIONS")
"""Requests counted against the read budget; every other method is a write."""

bearer = HTTPBearer(auto_error=False, description="The token `exchange orgs create` printed.")


async def pool_of(request: Request) -> asyncpg.Pool:
    """The gateway's connection pool (async, as every dependency here: FastAPI runs a plain
    `def` dependency in a worker thread, a cost on every request)."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


async def postings_of(request: Request) -> Postings:
    """The gateway's write path; refused at once (503) while it is overloaded."""
    p: Postings = request.app.state.postings
    p.refuse_if_overloaded()
    return p


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal behind the bearer token (401 without one), within its request budget.

    The web app calls this API in-process for a signed-in person (services/web/api.py): it
    names the session in `X-Exchange-Session`, vouched for by the gateway process's own secret
    in `X-Exchange-Web`, so the same rules decide for a page as for an API client."""
    if credentials is None:
        who = await web_session_principal(request)
        if who is None:
            raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    else:
        cache: TokenCache = request.app.state.principals
        who = await principal_of(cache, request.app.state.pool, credentials.credentials)
    if who is None:
        raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
    if who.suspended:
        raise HTTPException(403, SUSPENDED)
    # budgets are per principal, reads and writes apart (429 with Retry-After beyond them)
    limiter: RateLimiter = request.app.state.rate
    limiter.check(who.id, write=request.method not in READ_METHODS)
    return who


async def still_admitted(request: Request) -> bool:
    """Whether the credentials of this (long-running) request still name a principal that may
    act: not revoked, not rotated away, not suspended. An open event stream asks it whenever a
    revocation or suspension was heard, and now and then besides, so that cutting a token
    off also ends the streams it opened (no rate budget is spent asking)."""
    credentials = await bearer(request)
    if credentials is None:
        who = await web_session_principal(request)
    else:
        cache: TokenCache = request.app.state.principals
        who = await principal_of(cache, request.app.state.pool, credentials.credentials)
    return who is not None and not who.suspended


async def web_session_principal(request: Request) -> Principal | None:
    """The principal of an in-process call from the web app, or None for any other request."""
    from services.web.sessions import session_of

    secret = getattr(request.app.state, "web_secret", None)
    vouched = request.headers.get("X-Exchange-Web", "")
    if not secret or not hmac.compare_digest(secret, vouched):
        return None
    session = await session_of(request.app.state.pool, request.headers.get("X-Exchange-Session"))
    return session.principal if session is not None else None


Pool = Annotated[asyncpg.Pool, Depends(pool_of)]
PostingsDep = Annotated[Postings, Depends(postings_of)]
Caller = Annotated[Principal, Depends(caller)]
IdemHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Same key and body: the original answer, nothing new written; "
        "same key, other body: 409.",
    ),
]


def require_role(who: Principal, *roles: Role) -> None:
    """403 unless the caller acts in one of `roles`."""
    if who.role not in roles:
        if who.role is Role.AUDITOR:
            raise HTTPException(403, "auditors read everything and write nothing")
        wanted = " or ".join(r.value for r in roles)
        raise HTTPException(403, f"only a {wanted} may do this; you act as {who.role.value}")


def require_operator(who: Principal) -> None:
    """403 unless the caller is one of the exchange's operators (`exchange operators create`)."""
    if not who.is_operator:
        raise HTTPException(
            403, f"only the exchange's operator may do this; you act as {who.role.value}"
        )


async def operator_caller(who: Caller) -> Principal:
    """The caller, when an operator: a dependency, so that anyone else gets 403 before their
    body is even read (never a 422 that tells them what an operator's body looks like)."""
    require_operator(who)
    return who


OperatorCaller = Annotated[Principal, Depends(operator_caller)]


async def require_owner(pool: asyncpg.Pool, who: Principal, resource: str, rid: uuid.UUID) -> None:
    """404 for an unknown fund or need, 403 when it belongs to another organisation."""
    owner = await pool.fetchval(
        "SELECT org_id FROM ownership WHERE resource = $1 AND resource_id = $2", resource, rid
    )
    if owner is None:
        raise HTTPException(404, f"no such {resource}")
    if owner != who.id:
        raise HTTPException(403, f"this {resource} belongs to another organisation")


async def may_read_private(
    pool: asyncpg.Pool, who: Principal, resource: Resource, rid: uuid.UUID
) -> bool:
    """Whether the caller sees `resource`'s private side (donors, matches, volunteers' plans):
    the rules of `services.gateway.visibility`, which the event stream follows too."""
    return await Visibility(pool, who).may_read(resource, rid)
