"""Queries behind the GET endpoints: read models kept by the ledger, shaped for clients.

Read models hold personal text as the log does, sealed (docs/privacy.md); it is opened here,
with the subject's key, only in the answer, and shows as the forgotten marker once the key is
gone.

Lists are keyset-paginated on the archive sequence (newest first): a cursor is the sequence of
the last item seen, so pages stay stable while new events arrive. Every answer says which
archive sequence it reflects (`as_of_seq`), so a client can wait for its own write.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from schemas.envelope import derive_id
from schemas.sealed import open_sealed, parse_sealed, reveal_json, subject_of
from services.domain.fund_reserve import held_for_urgent
from services.domain.projections import fund_account, income_account, volunteer_account
from services.identity import Principal
from services.privacy import keys_for, keys_in


async def as_of(pool: asyncpg.Pool) -> int:
    """The newest archive sequence: what every read reflects at least."""
    return int(await pool.fetchval("SELECT coalesce(max(archive_seq), 0) FROM archive"))


async def wait_for_seq(pool: asyncpg.Pool, seq: int, within: float) -> int:
    """Wait (at most `within` seconds) until the archive has reached `seq`; return where it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    current = await as_of(pool)
    while current < seq and loop.time() < deadline:
        await asyncio.sleep(0.05)
        current = await as_of(pool)
    return current


def _need(row: asyncpg.Record, keys: dict[str, bytes]) -> dict[str, Any]:
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
        "spec": reveal_json(row["spec"], keys),
        "seq": row["seq"],
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
        "minutes_served": row["minutes_served"],
        "rule": spec.get("rule"),
        "seq": row["seq"],
    }


NEED_SQL = (
    "SELECT n.*, a.archive_seq AS seq FROM rm_needs n"
    " JOIN projected_events a ON a.event_id = n.posted_event"
)
MATCH_SQL = (
    "SELECT m.*, a.archive_seq AS seq FROM rm_matches m"
    " JOIN projected_events a ON a.event_id = m.proposed_event"
)


async def need(pool: asyncpg.Pool, need_id: uuid.UUID, with_matches: bool) -> dict[str, Any] | None:
    """A need with its status; its matches for those allowed to see them."""
    row = await pool.fetchrow(f"{NEED_SQL} WHERE n.need_id = $1", need_id)
    if row is None:
        return None
    out = _need(row, await keys_in(pool, [row["spec"]]))
    if with_matches:
        rows = await pool.fetch(f"{MATCH_SQL} WHERE m.need_id = $1 ORDER BY seq", need_id)
        out["matches"] = [_match(m) for m in rows]
    return out


async def needs(
    pool: asyncpg.Pool,
    *,
    district: str | None,
    category: str | None,
    status: str | None,
    urgency: str | None,
    org_id: uuid.UUID | None = None,
    after: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Needs filtered by district, category, status, urgency and the organisation that
    posted them, newest first."""
    rows = await pool.fetch(
        f"{NEED_SQL} WHERE ($1::text IS NULL OR n.district = $1)"
        " AND ($2::text IS NULL OR n.category = $2) AND ($3::text IS NULL OR n.status = $3)"
        " AND ($4::text IS NULL OR n.urgency = $4) AND ($5::bigint IS NULL OR a.archive_seq < $5)"
        " AND ($7::text IS NULL OR n.org_id = $7)"
        " ORDER BY a.archive_seq DESC LIMIT $6",
        district,
        category,
        status,
        urgency,
        after,
        limit,
        str(org_id) if org_id else None,
    )
    keys = await keys_in(pool, [r["spec"] for r in rows])
    return [_need(r, keys) for r in rows]


async def balance(pool: asyncpg.Pool, fund_id: uuid.UUID) -> dict[str, int]:
    """A fund's money, derived from the journal: donated, refunded, available, reserved,
    disbursed."""
    sums = {
        r["account"]: int(r["total"])
        for r in await pool.fetch(
            "SELECT account, sum(amount_minor) AS total FROM journal_lines"
            " WHERE account = ANY($1::text[]) GROUP BY account",
            [
                income_account(fund_id),
                fund_account(fund_id, "available"),
                fund_account(fund_id, "reserved"),
                fund_account(fund_id, "disbursed"),
            ],
        )
    }
    return {
        "donated_minor": -sums.get(income_account(fund_id), 0),
        "available_minor": sums.get(fund_account(fund_id, "available"), 0),
        "reserved_minor": sums.get(fund_account(fund_id, "reserved"), 0),
        "disbursed_minor": sums.get(fund_account(fund_id, "disbursed"), 0),
    }


async def fund(pool: asyncpg.Pool, fund_id: uuid.UUID) -> dict[str, Any] | None:
    """A fund, its earmarks and its balance (public: charities disclose these)."""
    row = await pool.fetchrow("SELECT * FROM rm_funds WHERE fund_id = $1", fund_id)
    if row is None:
        return None
    money = await balance(pool, fund_id)
    percent = int(row["urgent_reserve_percent"])
    held = held_for_urgent(money["donated_minor"], money["available_minor"], percent)
    return {
        "fund_id": str(row["fund_id"]),
        "org_id": row["org_id"],
        "name": row["name"],
        "currency": row["currency"].strip(),
        "spec": row["spec"],
        "urgent_reserve_percent": percent,
        "balance": money | {"held_for_urgent_minor": held},
    }


async def funds(pool: asyncpg.Pool, after: int | None, limit: int) -> list[dict[str, Any]]:
    """Funds, newest first, with their balances."""
    rows = await pool.fetch(
        "SELECT f.fund_id, a.archive_seq AS seq FROM rm_funds f"
        " JOIN projected_events a ON a.event_id = f.opened_event"
        " WHERE ($1::bigint IS NULL OR a.archive_seq < $1) ORDER BY a.archive_seq DESC LIMIT $2",
        after,
        limit,
    )
    out = []
    for r in rows:
        item = await fund(pool, r["fund_id"])
        if item is not None:
            out.append(item | {"seq": r["seq"]})
    return out


async def fund_history(pool: asyncpg.Pool, fund_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every money movement of a fund, in order: which event, which account, how much."""
    rows = await pool.fetch(
        "SELECT a.archive_seq, a.event_type, a.event_id, a.recorded_at, j.account,"
        " j.amount_minor, j.currency,"
        " CASE WHEN a.event_type IN ('DonationReceived', 'DonationRefunded')"
        " THEN convert_from(a.value, 'UTF8')::jsonb #>> '{payload,donation_id}' END AS donation,"
        # a donor is named only by a registered organisation's name, posted as plain text:
        # any other label may be a person's name (sealed, or plain from before sealing)
        " CASE WHEN a.event_type = 'DonationReceived' THEN (SELECT o.name FROM organisations o"
        "  WHERE jsonb_typeof(convert_from(a.value, 'UTF8')::jsonb #> '{payload,donation,donor}')"
        "  = 'string' AND o.name = convert_from(a.value, 'UTF8')::jsonb"
        "  #>> '{payload,donation,donor}' LIMIT 1) END AS donor"
        " FROM journal_lines j JOIN projected_events p USING (event_id)"
        " JOIN archive a ON a.archive_seq = p.archive_seq"
        " WHERE j.account LIKE $1 ORDER BY a.archive_seq, j.line_no",
        f"%{fund_id}%",
    )
    return [
        {
            "seq": r["archive_seq"],
            "event_type": r["event_type"],
            "event_id": str(r["event_id"]),
            "recorded_at": r["recorded_at"].isoformat() if r["recorded_at"] else None,
            "account": r["account"],
            "amount_minor": r["amount_minor"],
            "currency": r["currency"].strip(),
            # which donation a gift or refund line is about: what a refund must name
            "donation_id": r["donation"],
            # who gave it: an organisation's name, or None for every other donor (docs/privacy.md)
            "donor": r["donor"],
        }
        for r in rows
    ]


async def volunteer(pool: asyncpg.Pool, volunteer_id: uuid.UUID) -> dict[str, Any] | None:
    """A volunteer's pledge and the shifts proposed to them."""
    row = await pool.fetchrow("SELECT * FROM rm_pledges WHERE volunteer_id = $1", volunteer_id)
    if row is None:
        return None
    rows = await pool.fetch(f"{MATCH_SQL} WHERE m.volunteer_id = $1 ORDER BY seq", volunteer_id)
    keys = await keys_for(pool, [subject_of("volunteer", volunteer_id)])
    completed = await completions(pool, volunteer_id)
    return _volunteer(row, keys) | {
        "spec": reveal_json(row["spec"], keys),
        "matches": [_match(m) | {"completed_at": completed.get(str(m["match_id"]))} for m in rows],
    }


def _volunteer(row: asyncpg.Record, keys: dict[str, bytes]) -> dict[str, Any]:
    subject = subject_of("volunteer", row["volunteer_id"])
    sealed = parse_sealed(row["pseudonym"])
    return {
        "volunteer_id": str(row["volunteer_id"]),
        "pseudonym": row["pseudonym"]
        if sealed is None
        else open_sealed(sealed, keys.get(subject), subject),
        "district": row["district"],
        "status": row["status"],
    }


async def completions(pool: asyncpg.Pool, volunteer_id: uuid.UUID) -> dict[str, str]:
    """When each of a volunteer's completed shifts was confirmed (match id → the moment the
    completion was recorded): the journal's `served` lines, one per completion."""
    rows = await pool.fetch(
        "SELECT convert_from(a.value, 'UTF8')::jsonb #>> '{payload,match_id}' AS match_id,"
        " a.recorded_at FROM journal_lines j JOIN projected_events p USING (event_id)"
        " JOIN archive a ON a.archive_seq = p.archive_seq WHERE j.account = $1",
        volunteer_account(volunteer_id, "served"),
    )
    return {
        r["match_id"]: r["recorded_at"].isoformat()
        for r in rows
        if r["match_id"] and r["recorded_at"] is not None
    }


async def volunteers(
    pool: asyncpg.Pool, who: Principal, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """The volunteers an organisation registered (auditors: all), newest first, each with
    their pseudonym, district and whether their pledge stands: the registrar's own list, by
    the rule `services.gateway.visibility` decides a volunteer's plans by."""
    rows = await pool.fetch(
        "SELECT r.volunteer_id, r.pseudonym, r.district, r.status, a.archive_seq AS seq"
        " FROM rm_pledges r JOIN volunteers v USING (volunteer_id)"
        " JOIN projected_events a ON a.event_id = r.pledged_event"
        " WHERE ($1::boolean OR v.registered_by = $2)"
        " AND ($3::bigint IS NULL OR a.archive_seq < $3) ORDER BY a.archive_seq DESC LIMIT $4",
        who.role.value == "auditor",
        who.id,
        after,
        limit,
    )
    keys = await keys_for(pool, [subject_of("volunteer", r["volunteer_id"]) for r in rows])
    return [_volunteer(r, keys) | {"seq": r["seq"]} for r in rows]


async def matches(
    pool: asyncpg.Pool, who: Principal, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """Matches the caller may see (auditors: all; volunteers: theirs; organisations: those on
    their needs or funds), newest first."""
    rows = await pool.fetch(
        f"{MATCH_SQL} WHERE ($1::bigint IS NULL OR a.archive_seq < $1) AND ("
        " $2::boolean OR m.volunteer_id = $3 OR EXISTS (SELECT 1 FROM ownership o"
        "  WHERE o.org_id = $3 AND ((o.resource = 'need' AND o.resource_id = m.need_id)"
        "   OR (o.resource = 'fund' AND o.resource_id = m.fund_id))))"
        " ORDER BY a.archive_seq DESC LIMIT $4",
        after,
        who.role.value == "auditor",
        who.id,
        limit,
    )
    return [_match(r) for r in rows]


async def match(pool: asyncpg.Pool, match_id: uuid.UUID) -> dict[str, Any] | None:
    """One match."""
    row = await pool.fetchrow(f"{MATCH_SQL} WHERE m.match_id = $1", match_id)
    return _match(row) if row else None


async def posting(pool: asyncpg.Pool, posting_id: uuid.UUID) -> dict[str, Any] | None:
    """Where a posting stands: accepted by the gateway, then decided (or refused) downstream,
    with the archive sequence of the decision."""
    # One statement, so one snapshot: a refusal and its decision are committed together, and
    # two reads with a commit between them once answered "decided" for a refused posting.
    row = await pool.fetchrow(
        "SELECT p.posting_id, p.org_id, p.event_type, p.accepted_at, p.response, r.reason,"
        " r.field, (SELECT e.archive_seq FROM projected_events e WHERE e.event_id = $2)"
        " AS decided FROM postings p LEFT JOIN rm_refusals r ON r.posting_id = p.posting_id"
        " WHERE p.posting_id = $1",
        posting_id,
        derive_id(posting_id, "decided"),
    )
    if row is None:
        return None
    decided = row["decided"]
    status = "refused" if row["reason"] else ("decided" if decided else "pending")
    return {
        "posting_id": str(row["posting_id"]),
        "org_id": row["org_id"],
        "type": row["event_type"],
        "status": status,
        "reason": row["reason"],
        "field": row["field"],
        "decided_seq": decided,
        "accepted_at": row["accepted_at"].isoformat(),
        "response": row["response"],
    }
