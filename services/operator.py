"""What the exchange's operator does to organisations: register, suspend, reinstate, re-issue
and revoke their tokens (issue #16). One code path: `exchange orgs …` and the gateway's
`/v1/orgs` routes both call these functions, so a registration or a suspension is the same
act, refused by the same rules, whichever way the operator chose.

Where the state lives, and why not in a projection of the log. Every act writes its state
(the `organisations` row's `suspended_at`, the `access_tokens` rows) and its event (into the
outbox, for organisations.events, whose single writer is the gateway) in one PostgreSQL
transaction. The gateway decides from that state on every request, so a suspension or a
revocation holds at once: a projection by the ledger would hold only after the relay
published the event and the ledger consumed it — seconds in which a suspended organisation
could go on posting. The events are the account of the act (who did what to whom, when) for
auditors and foundations' own systems, and are numbered densely on the organisation's stream
(`organisation:<id>`, 1 being its registration; `services.ledger.sequences`), so a missing act
shows as a gap. No event carries a token or its hash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas.common import Role
from schemas.envelope import Actor
from schemas.message import Message
from schemas.organisations import (
    OrganisationReinstated,
    OrganisationSuspended,
    OrganisationTokenRotated,
    OrganisationTokensRevoked,
    OrgKind,
)
from services.identity import (
    TOKEN_CHANNEL,
    Principal,
    append_to_log,
    create_organisation,
    revoke_all,
    rotate_token,
)


def actor_of(who: Principal) -> Actor:
    """The actor an operator's acts carry in the log: its own id, in role `system`."""
    return Actor(org_id=str(who.id), role=Role.SYSTEM)


def suspension_change(org_id: uuid.UUID, suspended: bool, suspend: bool) -> Message | None:
    """The event that suspending (or reinstating) an organisation now suspended (or not)
    records, or None when nothing changes: a retried suspension writes nothing twice."""
    if suspended == suspend:
        return None
    return (
        OrganisationSuspended(org_id=org_id) if suspend else OrganisationReinstated(org_id=org_id)
    )


def status_of(suspended: bool, live_tokens: int) -> str:
    """What the operator's list shows: `suspended` (refused whatever its token), `no token`
    (revoked, waiting for a rotation) or `active`."""
    if suspended:
        return "suspended"
    return "active" if live_tokens > 0 else "no token"


@dataclass(frozen=True)
class Listed:
    """One organisation as the operator sees it."""

    org_id: uuid.UUID
    kind: str
    name: str
    district: str
    street: str | None
    status: str
    created_at: datetime


async def register(
    conn: asyncpg.Connection,
    actor: Actor,
    kind: OrgKind,
    name: str,
    district: str,
    street: str | None,
) -> tuple[uuid.UUID, str]:
    """Register an organisation and issue its first token; return (org_id, token). Refuses a
    name taken or one that reads the same (`services.identity.OrganisationExists`)."""
    return await create_organisation(conn, kind, name, district, street, actor)


async def _next_seq(conn: asyncpg.Connection, org_id: uuid.UUID) -> tuple[int, bool]:
    """Lock the organisation's row (acts on one organisation happen one at a time) and take
    its stream's next number; return (seq, suspended). LookupError for an unknown id."""
    row = await conn.fetchrow(
        "UPDATE organisations SET stream_seq = stream_seq + 1 WHERE org_id = $1"
        " RETURNING stream_seq, suspended_at IS NOT NULL AS suspended",
        org_id,
    )
    if row is None:
        raise LookupError(f"no organisation {org_id}")
    return int(row["stream_seq"]), bool(row["suspended"])


async def set_suspended(
    conn: asyncpg.Connection, actor: Actor, org_id: uuid.UUID, suspend: bool
) -> bool:
    """Suspend (or reinstate) an organisation; return whether anything changed. Every gateway
    drops its cached tokens when the transaction commits (NOTIFY, as for a revocation)."""
    async with conn.transaction():
        suspended = await conn.fetchval(
            "SELECT suspended_at IS NOT NULL FROM organisations WHERE org_id = $1 FOR UPDATE",
            org_id,
        )
        if suspended is None:
            raise LookupError(f"no organisation {org_id}")
        event = suspension_change(org_id, suspended, suspend)
        if event is None:
            return False
        seq, _ = await _next_seq(conn, org_id)
        await conn.execute(
            "UPDATE organisations SET suspended_at = CASE WHEN $2 THEN now() END WHERE org_id = $1",
            org_id,
            suspend,
        )
        await append_to_log(conn, org_id, seq, event, actor)
        await conn.execute("SELECT pg_notify($1, $2)", TOKEN_CHANNEL, str(org_id))
    return True


async def rotate(conn: asyncpg.Connection, actor: Actor, org_id: uuid.UUID) -> str:
    """Issue an organisation a new token (returned, shown once) and stop every earlier one."""
    async with conn.transaction():
        seq, _ = await _next_seq(conn, org_id)
        before = await _live_tokens(conn, org_id)
        token = await rotate_token(conn, "organisation", org_id, actor.org_id)
        event = OrganisationTokenRotated(org_id=org_id, tokens_revoked=before)
        await append_to_log(conn, org_id, seq, event, actor)
    return token


async def revoke(conn: asyncpg.Connection, actor: Actor, org_id: uuid.UUID) -> int:
    """Stop every token of an organisation; return how many stopped. It acts again only after
    a rotation."""
    async with conn.transaction():
        seq, _ = await _next_seq(conn, org_id)
        revoked = await revoke_all(conn, "organisation", org_id, actor.org_id)
        event = OrganisationTokensRevoked(org_id=org_id, tokens_revoked=revoked)
        await append_to_log(conn, org_id, seq, event, actor)
    return revoked


async def _live_tokens(conn: asyncpg.Connection, org_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM access_tokens WHERE principal_kind = 'organisation'"
            " AND principal_id = $1 AND revoked_at IS NULL",
            org_id,
        )
    )


async def organisations(conn: asyncpg.Connection | asyncpg.Pool) -> list[Listed]:
    """Every organisation, oldest first, with its status (`status_of`)."""
    rows = await conn.fetch(
        "SELECT o.org_id, o.kind, o.name, o.district, o.street, o.created_at,"
        " o.suspended_at IS NOT NULL AS suspended,"
        " (SELECT count(*) FROM access_tokens t WHERE t.principal_kind = 'organisation'"
        "  AND t.principal_id = o.org_id AND t.revoked_at IS NULL) AS live"
        " FROM organisations o ORDER BY o.created_at, o.org_id"
    )
    return [
        Listed(
            r["org_id"],
            r["kind"],
            r["name"],
            r["district"],
            r["street"],
            status_of(r["suspended"], r["live"]),
            r["created_at"],
        )
        for r in rows
    ]
