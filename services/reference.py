"""Reference data in PostgreSQL and on the log: define, retire and seed skills and need
categories (issue #16). One code path for the HTTP routes (services/gateway/reference_api.py)
and the gateway's start (the seed).

As for the operator's acts on organisations (services/operator.py), every act writes its state
(a `reference_terms` row) and its event (into the outbox, for reference.events, whose single
writer is the gateway) in one transaction, numbered on the term's stream
(`reference:<kind>:<code>`: 1 its definition, 2 its retirement). The gateway checks postings
against the table, so a term holds from the answer on; the log is the account of who defined
or retired what, and a replay folds it back into the same lists (`services.domain.reference`).
Every change sends a NOTIFY, on which every gateway drops its cached lists.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.message import Message
from schemas.reference import ReferenceTermDefined, ReferenceTermRetired, TermKind
from schemas.topics import REFERENCE_EVENTS
from services.domain.reference import SEED, Term, Terms

REFERENCE_CHANNEL = "exchange_reference"
"""NOTIFY channel on which a change of the lists is announced (payload: `kind:code`)."""

SEED_ACTOR = Actor(org_id="seed", role=Role.SYSTEM)
"""The actor of the built-in terms' definitions."""

SEED_NAMESPACE = uuid.UUID("6f1d3c2e-9b7a-5e4f-8a21-0c5d7e9f1b3a")
"""Namespace of the seed events' ids: the same term seeded by any gateway has the same id."""


class TermExists(Exception):
    """The code is already in its list (live or retired): codes are never reused."""


def stream_of(kind: TermKind, code: str) -> str:
    """The term's stream id on reference.events."""
    return f"reference:{kind.value}:{code}"


async def load(conn: asyncpg.Connection | asyncpg.Pool) -> Terms:
    """Both lists as the table holds them."""
    rows = await conn.fetch(
        "SELECT kind, code, label_zh, label_en, district, retired_at IS NOT NULL AS retired"
        " FROM reference_terms ORDER BY position"
    )
    return Terms(
        Term(
            TermKind(r["kind"]),
            r["code"],
            r["label_zh"],
            r["label_en"],
            r["district"],
            r["retired"],
        )
        for r in rows
    )


async def _append(
    conn: asyncpg.Connection,
    kind: TermKind,
    code: str,
    seq: int,
    event: Message,
    actor: Actor,
    event_id: uuid.UUID | None = None,
) -> None:
    """Put a term's event into the outbox, in the caller's transaction; the relay publishes it
    to reference.events (swept within seconds, as the operator's acts on organisations)."""
    now = datetime.now(UTC)
    envelope = Envelope[Message](
        event_id=event_id or uuid.uuid4(),
        event_type=event.TYPE,
        schema_version=event.VERSION,
        stream_id=stream_of(kind, code),
        stream_seq=seq,
        occurred_at=now,
        recorded_at=now,
        actor=actor,
        correlation_id=uuid.uuid5(SEED_NAMESPACE, stream_of(kind, code)),
        payload=event,
    )
    await conn.execute(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " request_hash, response) VALUES ($1, $2, $3, $4, $5, 'operator', $6, '{}'::jsonb)",
        envelope.event_id,
        REFERENCE_EVENTS.name,
        f"{kind.value}:{code}".encode(),
        encode(envelope),
        event.TYPE,
        f"{stream_of(kind, code)}:{seq}",
    )
    await conn.execute("SELECT pg_notify($1, $2)", REFERENCE_CHANNEL, f"{kind.value}:{code}")


async def _insert(conn: asyncpg.Connection, term: Term, by: str) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO reference_terms (kind, code, label_zh, label_en, district, defined_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, code) DO NOTHING RETURNING 1",
        term.kind.value,
        term.code,
        term.label_zh,
        term.label_en,
        term.district,
        by,
    )
    return inserted is not None


def defined_event(term: Term) -> ReferenceTermDefined:
    """The event that records `term`'s definition."""
    return ReferenceTermDefined(
        kind=term.kind,
        code=term.code,
        label_zh=term.label_zh,
        label_en=term.label_en,
        district=term.district,
    )


async def define(conn: asyncpg.Connection, actor: Actor, term: Term) -> None:
    """Add a term to its list and record it on the log; TermExists when the code is taken."""
    async with conn.transaction():
        if not await _insert(conn, term, actor.org_id):
            raise TermExists(f"this {term.kind.value} code is already defined")
        await _append(conn, term.kind, term.code, 1, defined_event(term), actor)


async def retire(conn: asyncpg.Connection, actor: Actor, kind: TermKind, code: str) -> bool:
    """Retire a term; return whether anything changed (retiring twice records nothing).
    LookupError for a code its list does not hold."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT retired_at IS NOT NULL AS retired, stream_seq FROM reference_terms"
            " WHERE kind = $1 AND code = $2 FOR UPDATE",
            kind.value,
            code,
        )
        if row is None:
            raise LookupError(f"no {kind.value} {code}")
        if row["retired"]:
            return False
        seq = int(row["stream_seq"]) + 1
        await conn.execute(
            "UPDATE reference_terms SET retired_at = now(), retired_by = $3, stream_seq = $4"
            " WHERE kind = $1 AND code = $2",
            kind.value,
            code,
            actor.org_id,
            seq,
        )
        await _append(conn, kind, code, seq, ReferenceTermRetired(kind=kind, code=code), actor)
    return True


async def seed(conn: asyncpg.Connection, terms: tuple[Term, ...] = SEED) -> int:
    """Define every built-in term not yet in its list, on the log too; return how many were
    written. Idempotent: a term already defined (by an earlier start, another gateway at the
    same moment, or an operator) is not written again; its event id is derived from the term,
    so even a copy would be recognised as the same event."""
    written = 0
    async with conn.transaction():
        for term in terms:
            if await _insert(conn, term, SEED_ACTOR.org_id):
                event_id = uuid.uuid5(SEED_NAMESPACE, f"{stream_of(term.kind, term.code)}:1")
                await _append(
                    conn, term.kind, term.code, 1, defined_event(term), SEED_ACTOR, event_id
                )
                written += 1
    return written


async def district_of(conn: asyncpg.Connection | asyncpg.Pool, org_id: uuid.UUID) -> str | None:
    """The district an organisation is registered in (None: no such organisation)."""
    value: str | None = await conn.fetchval(
        "SELECT district FROM organisations WHERE org_id = $1", org_id
    )
    return value
