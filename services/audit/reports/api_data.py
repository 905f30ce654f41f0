"""Report builders shared by the command line and the auditor's HTTP endpoints: each reads
with services.audit.reports.reading and computes with the pure modules."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.audit.reports import disclosure as d
from services.audit.reports.books import fold
from services.audit.reports.reading import first_sightings, organisation_names
from services.ledger.sequences import Seen, check_all, is_sequenced


async def sequence_report(
    conn: asyncpg.Connection | asyncpg.Pool, rescan: bool = False
) -> list[dict[str, Any]]:
    """The anomalies the ledger recorded, or (`rescan`) those a check of the whole archive
    finds now."""
    if not rescan:
        rows = await conn.fetch(
            "SELECT stream_id, kind, expected_seq, got_seq, event_id, event_type, archive_seq,"
            " topic FROM sequence_anomalies ORDER BY archive_seq, anomaly_id"
        )
        return [{**dict(r), "event_id": str(r["event_id"])} for r in rows]
    rows = await conn.fetch(
        "SELECT a.event_id, a.event_type, a.stream_id, a.stream_seq, a.archive_seq, a.topic"
        " FROM archive a WHERE a.stream_seq > 0 ORDER BY a.archive_seq"
    )
    seen = [
        Seen(
            r["event_id"],
            r["event_type"],
            r["stream_id"],
            r["stream_seq"],
            r["archive_seq"],
            r["topic"],
        )
        for r in rows
        if is_sequenced(r["stream_id"], r["stream_seq"], r["event_type"], r["topic"])
    ]
    _, found = check_all(seen)
    return [
        {
            "stream_id": a.seen.stream_id,
            "kind": a.kind,
            "expected_seq": a.expected_seq,
            "got_seq": a.seen.stream_seq,
            "event_id": str(a.seen.event_id),
            "event_type": a.seen.event_type,
            "archive_seq": a.seen.archive_seq,
            "topic": a.seen.topic,
        }
        for a in found
    ]


async def disclosure_report(
    conn: asyncpg.Connection | asyncpg.Pool, fund_id: uuid.UUID, quarter: str
) -> d.Disclosure:
    """A fund's report for a quarter (KeyError: no such fund by the quarter's end)."""
    start, end = d.quarter_bounds(quarter)
    events = await first_sightings(conn)
    names = await organisation_names(conn)
    opening = fold(e for e in events if e.recorded_at < start)
    closing = fold(e for e in events if e.recorded_at < end)
    for books in (opening, closing):
        for k, v in names.items():
            books.organisations.setdefault(k, v)
    return d.disclosure(opening, closing, fund_id, quarter)
