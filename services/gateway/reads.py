"""Queries behind the GET endpoints: read models kept by the ledger, shaped for clients."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from schemas.envelope import derive_id
from services.domain.projections import fund_account, income_account


def _need(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "need_id": str(row["need_id"]),
        "org_id": row["org_id"],
        "title": row["title"],
        "kind": row["kind"],
        "category": row["category"],
        "district": row["district"],
        "urgency": row["urgency"],
        "status": row["status"],
        "wanted": row["wanted"],
        "filled": row["filled"],
        "unit": row["unit"],
        "deadline": row["deadline"].isoformat(),
        "spec": row["spec"],
    }


def _match(row: asyncpg.Record) -> dict[str, Any]:
    spec = row["spec"]
    return {
        "match_id": str(row["match_id"]),
        "need_id": str(row["need_id"]),
        "supply": row["supply"],
        "status": row["status"],
        "volunteer_id": str(row["volunteer_id"]) if row["volunteer_id"] else None,
        "fund_id": str(row["fund_id"]) if row["fund_id"] else None,
        "amount": spec.get("amount"),
        "shift": spec.get("shift"),
        "minutes": row["minutes"],
        "rule": spec.get("rule"),
    }


async def need(pool: asyncpg.Pool, need_id: uuid.UUID) -> dict[str, Any] | None:
    """A need with its status and every match proposed for it."""
    row = await pool.fetchrow("SELECT * FROM rm_needs WHERE need_id = $1", need_id)
    if row is None:
        return None
    matches = await pool.fetch(
        "SELECT m.* FROM rm_matches m JOIN archive a ON a.event_id = m.proposed_event"
        " WHERE m.need_id = $1 ORDER BY a.archive_seq",
        need_id,
    )
    return _need(row) | {"matches": [_match(m) for m in matches]}


async def needs(
    pool: asyncpg.Pool,
    *,
    district: str | None,
    category: str | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Needs filtered by district, category and status, most urgent first."""
    rows = await pool.fetch(
        "SELECT * FROM rm_needs WHERE ($1::text IS NULL OR district = $1)"
        " AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR status = $3)"
        " ORDER BY CASE urgency WHEN 'critical' THEN 0 WHEN 'high' THEN 1"
        " WHEN 'normal' THEN 2 ELSE 3 END, deadline LIMIT $4",
        district,
        category,
        status,
        limit,
    )
    return [_need(r) for r in rows]


async def fund(pool: asyncpg.Pool, fund_id: uuid.UUID) -> dict[str, Any] | None:
    """A fund with its balance, derived from the journal: donated, available, reserved."""
    row = await pool.fetchrow("SELECT * FROM rm_funds WHERE fund_id = $1", fund_id)
    if row is None:
        return None
    sums = {
        r["account"]: r["total"]
        for r in await pool.fetch(
            "SELECT account, sum(amount_minor)::bigint AS total FROM journal_lines"
            " WHERE account = ANY($1::text[]) GROUP BY account",
            [
                income_account(fund_id),
                fund_account(fund_id, "available"),
                fund_account(fund_id, "reserved"),
            ],
        )
    }
    return {
        "fund_id": str(row["fund_id"]),
        "org_id": row["org_id"],
        "name": row["name"],
        "currency": row["currency"].strip(),
        "spec": row["spec"],
        "balance": {
            "donated_minor": -sums.get(income_account(fund_id), 0),
            "available_minor": sums.get(fund_account(fund_id, "available"), 0),
            "reserved_minor": sums.get(fund_account(fund_id, "reserved"), 0),
        },
    }


async def pledge(pool: asyncpg.Pool, volunteer_id: uuid.UUID) -> dict[str, Any] | None:
    """A volunteer's pledge and the shifts proposed to them."""
    row = await pool.fetchrow("SELECT * FROM rm_pledges WHERE volunteer_id = $1", volunteer_id)
    if row is None:
        return None
    matches = await pool.fetch(
        "SELECT * FROM rm_matches WHERE volunteer_id = $1 ORDER BY match_id", volunteer_id
    )
    return {
        "volunteer_id": str(row["volunteer_id"]),
        "pseudonym": row["pseudonym"],
        "district": row["district"],
        "spec": row["spec"],
        "matches": [_match(m) for m in matches],
    }


async def matches(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """The most recent matches, newest first."""
    rows = await pool.fetch(
        "SELECT m.* FROM rm_matches m JOIN archive a ON a.event_id = m.proposed_event"
        " ORDER BY a.archive_seq DESC LIMIT $1",
        limit,
    )
    return [_match(r) for r in rows]


async def posting(pool: asyncpg.Pool, posting_id: uuid.UUID) -> dict[str, Any] | None:
    """Where a posting stands: accepted by the gateway, then decided (or refused) downstream."""
    row = await pool.fetchrow(
        "SELECT p.posting_id, p.event_type, p.accepted_at, p.published_at, p.archived_at,"
        " p.response, r.reason, r.field FROM postings p"
        " LEFT JOIN rm_refusals r ON r.posting_id = p.posting_id WHERE p.posting_id = $1",
        posting_id,
    )
    if row is None:
        return None
    decided = await pool.fetchval(
        "SELECT count(*) FROM archive WHERE event_id = $1",
        derive_id(posting_id, "decided"),
    )
    status = "refused" if row["reason"] else ("decided" if decided else "pending")
    return {
        "posting_id": str(row["posting_id"]),
        "type": row["event_type"],
        "status": status,
        "reason": row["reason"],
        "field": row["field"],
        "accepted_at": row["accepted_at"].isoformat(),
        "response": row["response"],
    }
