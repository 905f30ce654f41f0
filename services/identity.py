"""Identities: organisations and volunteers, their bearer tokens, and what each may do.

Tokens are 256-bit random strings shown once; only their SHA-256 is stored. A principal is who a
token belongs to; `Principal.role` is the role its postings carry in the log.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from schemas.common import Role
from schemas.envelope import Actor, Envelope, encode
from schemas.message import Message
from schemas.organisations import OrganisationRegistered, OrgKind

TOKEN_PREFIX = "cx_"

ROLE_OF_KIND = {
    OrgKind.FOUNDATION: Role.FOUNDATION,
    OrgKind.COMMUNITY: Role.COMMUNITY,
    OrgKind.STREET_OFFICE: Role.COMMUNITY,
    OrgKind.SOCIAL_ORG: Role.SOCIAL_ORG,
    OrgKind.AUDITOR: Role.AUDITOR,
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: an organisation (with its kind) or a volunteer."""

    id: uuid.UUID
    role: Role
    kind: OrgKind | None = None
    name: str = ""
    suspended: bool = False
    """An organisation the operator suspended: the gateway refuses its every request (403)."""

    @property
    def is_volunteer(self) -> bool:
        """A volunteer acting with their own token."""
        return self.role is Role.VOLUNTEER

    @property
    def is_operator(self) -> bool:
        """One of the exchange's operators (`exchange operators create`). Operators act in the
        log as role `system`: `Role` is part of every published schema, and a new member
        would change what each of them accepts (docs/contract.md)."""
        return self.role is Role.SYSTEM


def new_token() -> str:
    """A fresh bearer token (256 bits of randomness)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(conn: asyncpg.Connection, kind: str, principal_id: uuid.UUID) -> str:
    """Issue a token for an organisation or volunteer; return it (it is not stored)."""
    token = new_token()
    await conn.execute(
        "INSERT INTO access_tokens (token_hash, principal_kind, principal_id) VALUES ($1, $2, $3)",
        token_hash(token),
        kind,
        principal_id,
    )
    return token


async def issue_tokens(
    conn: asyncpg.Connection, kind: str, principal_ids: list[uuid.UUID]
) -> list[str]:
    """`issue_token` for many principals in one statement (the bulk import); the tokens, in
    the order of `principal_ids`."""
    tokens = [new_token() for _ in principal_ids]
    await conn.execute(
        "INSERT INTO access_tokens (token_hash, principal_kind, principal_id)"
        " SELECT h, $2, p FROM unnest($1::text[], $3::uuid[]) AS t(h, p)",
        [token_hash(t) for t in tokens],
        kind,
        principal_ids,
    )
    return tokens


TOKEN_CHANNEL = "exchange_tokens"
"""PostgreSQL NOTIFY channel on which a revocation names the principal whose tokens stopped
working, so every gateway drops them from its token cache at once (`TokenCache`)."""


async def revoke_tokens(conn: asyncpg.Connection, kind: str, principal_id: uuid.UUID) -> int:
    """Revoke every token of a principal that still works; return how many. Call inside a
    transaction: gateways are told (NOTIFY) when it commits."""
    revoked = await conn.fetchval(
        "WITH r AS (UPDATE access_tokens SET revoked_at = now() WHERE principal_kind = $1"
        " AND principal_id = $2 AND revoked_at IS NULL RETURNING 1) SELECT count(*) FROM r",
        kind,
        principal_id,
    )
    await conn.execute("SELECT pg_notify($1, $2)", TOKEN_CHANNEL, str(principal_id))
    return int(revoked)


async def _record(
    conn: asyncpg.Connection,
    kind: str,
    principal_id: uuid.UUID,
    action: str,
    actor: str,
    revoked: int,
) -> None:
    await conn.execute(
        "INSERT INTO token_events (principal_kind, principal_id, action, actor, tokens_revoked)"
        " VALUES ($1, $2, $3, $4, $5)",
        kind,
        principal_id,
        action,
        actor,
        revoked,
    )


async def rotate_token(
    conn: asyncpg.Connection, kind: str, principal_id: uuid.UUID, actor: str
) -> str:
    """Re-issue a principal's token: every old one stops working, a new one is returned (shown
    once, never stored), and `token_events` records who did it. One transaction.

    Why rotation rather than showing the old token again: only its hash is kept, so the only
    way to give a volunteer (or an organisation) a working token again is a new one."""
    async with conn.transaction():
        revoked = await revoke_tokens(conn, kind, principal_id)
        token = await issue_token(conn, kind, principal_id)
        await _record(conn, kind, principal_id, "rotated", actor, revoked)
    return token


async def revoke_all(
    conn: asyncpg.Connection, kind: str, principal_id: uuid.UUID, actor: str
) -> int:
    """Revoke every token of a principal and record who did it; return how many stopped working."""
    async with conn.transaction():
        revoked = await revoke_tokens(conn, kind, principal_id)
        await _record(conn, kind, principal_id, "revoked", actor, revoked)
    return revoked


async def find_organisation(conn: asyncpg.Connection, name_or_id: str) -> asyncpg.Record:
    """The organisation with this id, or else with this name; LookupError when there is none,
    or when the name is used by organisations of several kinds (give the id then)."""
    try:
        org_id = uuid.UUID(name_or_id)
    except ValueError:
        rows = await conn.fetch(
            "SELECT org_id, kind, name FROM organisations WHERE name = $1", name_or_id.strip()
        )
    else:
        rows = await conn.fetch(
            "SELECT org_id, kind, name FROM organisations WHERE org_id = $1", org_id
        )
    if not rows:
        raise LookupError(f"no organisation {name_or_id!r}")
    if len(rows) > 1:
        ids = ", ".join(f"{r['org_id']} ({r['kind']})" for r in rows)
        raise LookupError(f"several organisations are named {name_or_id!r}: {ids}; give the id")
    row: asyncpg.Record = rows[0]
    return row


def name_key(name: str) -> str:
    """What two organisation names are compared by: NFKC (full-width and half-width forms,
    compatibility characters and ligatures become one form), case folded, with every
    whitespace, invisible (format and control characters such as zero-width spaces) and
    punctuation character removed, and any combining mark left over.

    Why this and no more: these are the differences a reader cannot see or does not read as a
    different name (「江东 社区」, 「江东社区\u200b」, 「ＪＤ社区」, 「江东社区。」). Characters
    that differ in shape (〇 and 零, traditional and simplified forms) are different names in
    Chinese and are left to the operator, who sees every name in `exchange orgs list`."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    kept = (c for c in folded if unicodedata.category(c)[0] not in "ZPC" and not _combining(c))
    return unicodedata.normalize("NFKC", "".join(kept))


def _combining(c: str) -> bool:
    return unicodedata.category(c) in ("Mn", "Me")


class OrganisationExists(Exception):
    """An organisation with this name, or one that reads the same (`name_key`), exists."""

    def __init__(self, name: str, existing: asyncpg.Record) -> None:
        same = existing["name"] == name
        what = "is already registered" if same else "looks the same as"
        super().__init__(
            f"{name!r} {what} {existing['kind']} {existing['name']!r} ({existing['org_id']});"
            f" to give it a new token: exchange orgs rotate-token {existing['org_id']}"
        )
        self.existing = existing
        self.same_name = same


COMMAND_LINE = Actor(org_id="operator", role=Role.SYSTEM)
"""The actor of what `exchange orgs …` does: whoever has the database; over HTTP the actor is
the operator's own id (`services.operator.actor_of`)."""


ORGANISATIONS_TOPIC = "organisations.events"
"""`schemas.topics.ORGANISATIONS_EVENTS.name`, spelt out so that an operator's one-shot command
does not import the whole registry (and with it every message model) to write one row; a unit
test holds the two equal."""


async def append_to_log(
    conn: asyncpg.Connection, org_id: uuid.UUID, seq: int, event: Message, actor: Actor
) -> None:
    """Put an event of the organisation's stream (`organisation:<id>`, number `seq`) into the
    outbox, in the caller's transaction; the gateway's relay publishes it to
    organisations.events. No client posted it, so it has no idempotency key or answer."""
    now = datetime.now(UTC)
    envelope = Envelope[Message](
        event_id=uuid.uuid4(),
        event_type=event.TYPE,
        schema_version=event.VERSION,
        stream_id=f"organisation:{org_id}",
        stream_seq=seq,
        occurred_at=now,
        recorded_at=now,
        actor=actor,
        correlation_id=org_id,
        payload=event,
    )
    await conn.execute(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " request_hash, response) VALUES ($1, $2, $3, $4, $5, 'operator', $6, '{}'::jsonb)",
        envelope.event_id,
        ORGANISATIONS_TOPIC,
        str(org_id).encode(),
        encode(envelope),
        event.TYPE,
        f"org:{org_id}:{seq}",
    )


NAMES_LOCK = 0x6F72_6773
"""Advisory lock taken while a name is checked and registered, so two operators registering
look-alike names at the same moment cannot both pass the check."""


async def create_organisation(
    conn: asyncpg.Connection,
    kind: OrgKind,
    name: str,
    district: str,
    street: str | None,
    actor: Actor | None = None,
) -> tuple[uuid.UUID, str]:
    """Register an organisation and issue its first token; return (org_id, token).

    Refuses (`OrganisationExists`) a name that any organisation, of any kind, already has or
    that reads the same (`name_key`): a second registration used to hand out a second valid
    token for the existing organisation to whoever ran the command, and a look-alike name is
    how one organisation passes for another in the log and the auditor's reports. A lost
    token is re-issued with `rotate_token`, which also stops the old one. The
    `OrganisationRegistered` event goes into the outbox in the same transaction; the
    gateway's relay publishes it, naming `actor` (the operator who registered it; by default
    the command line's `COMMAND_LINE`)."""
    actor = actor or COMMAND_LINE
    event = OrganisationRegistered(
        org_id=uuid.uuid4(), kind=kind, name=name, district=district, street=street
    )  # validates name and place before anything is written
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", NAMES_LOCK)
        key = name_key(event.name)
        for row in await conn.fetch("SELECT org_id, kind, name FROM organisations"):
            if row["name"] == event.name or name_key(row["name"]) == key:
                raise OrganisationExists(event.name, row)
        await conn.execute(
            "INSERT INTO organisations (org_id, kind, name, district, street)"
            " VALUES ($1, $2, $3, $4, $5)",
            event.org_id,
            kind.value,
            event.name,
            event.district,
            event.street,
        )
        await append_to_log(conn, event.org_id, 1, event, actor)
        return event.org_id, await issue_token(conn, "organisation", event.org_id)


async def principal_for(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal | None:
    """The principal a bearer token belongs to, or None for an unknown or revoked token."""
    return await principal_for_hash(conn, token_hash(token))


async def principal_for_hash(
    conn: asyncpg.Connection | asyncpg.Pool, hashed: str
) -> Principal | None:
    """The principal of the token whose hash is `hashed` (a web session keeps only the hash)."""
    row = await conn.fetchrow(
        "SELECT t.principal_kind, t.principal_id, o.kind, o.name, o.suspended_at,"
        " p.name AS operator FROM access_tokens t"
        " LEFT JOIN organisations o ON o.org_id = t.principal_id"
        " LEFT JOIN operators p ON p.operator_id = t.principal_id"
        " WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        hashed,
    )
    if row is None:
        return None
    if row["principal_kind"] == "volunteer":
        return Principal(row["principal_id"], Role.VOLUNTEER)
    if row["principal_kind"] == "operator":
        return Principal(row["principal_id"], Role.SYSTEM, None, row["operator"])
    kind = OrgKind(row["kind"])
    return Principal(
        row["principal_id"],
        ROLE_OF_KIND[kind],
        kind,
        row["name"],
        suspended=row["suspended_at"] is not None,
    )


async def create_operator(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, str]:
    """Register one of the exchange's operators and issue its first token; return (id, token).
    Only the command line does this (whoever has the database): an operator cannot make
    another over HTTP. A name already taken is refused (ValueError naming the existing id)."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name or len(name) > 80:
        raise ValueError("an operator's name is 1 to 80 characters")
    async with conn.transaction():
        existing = await conn.fetchval("SELECT operator_id FROM operators WHERE name = $1", name)
        if existing is not None:
            raise ValueError(f"operator {name!r} exists ({existing}); choose another name")
        operator_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO operators (operator_id, name) VALUES ($1, $2)", operator_id, name
        )
        return operator_id, await issue_token(conn, "operator", operator_id)


async def rotate_operator_token(conn: asyncpg.Connection, name_or_id: str) -> tuple[uuid.UUID, str]:
    """Give an operator a new token (every earlier one stops working at once); return (id,
    token). Like `create_operator`, only the command line does this: an operator who lost a
    token, or fears it leaked, asks whoever has the database. LookupError when unknown."""
    key = unicodedata.normalize("NFC", name_or_id).strip()
    try:
        by_id = uuid.UUID(key)
    except ValueError:
        by_id = None
    operator_id: uuid.UUID | None = await conn.fetchval(
        "SELECT operator_id FROM operators WHERE name = $1 OR operator_id = $2", key, by_id
    )
    if operator_id is None:
        raise LookupError(f"no operator {name_or_id!r} (exchange operators create NAME)")
    return operator_id, await rotate_token(conn, "operator", operator_id, "operator")
