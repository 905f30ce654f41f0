"""The ledger's producer check: every newly archived record whose `producer` header does not
name its topic's single writer is recorded in `producer_flags` (and logged).

Kafka does not tell a consumer which principal produced a record; the header is what services
say about themselves (services/platform/access.py). So this catches a service or a tool writing
where it must not, and a stranger who does not bother to forge the header. Against a forger
only the broker's ACLs help (deploy/README.md). The record is still archived and projected:
the archive mirrors the log, and the matcher has already acted on the same record; what the
check adds is that nobody can say it went unnoticed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.platform.access import PRODUCER_HEADER as PRODUCER
from services.platform.access import producer_of, producer_problem, writer_of
from services.platform.kafka import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Flag:
    """One record whose claimed producer is not its topic's writer."""

    record: Record
    claimed: str | None
    expected: str
    reason: str


def check(record: Record) -> Flag | None:
    """The flag for `record`, or None when its producer is its topic's writer (or the topic is
    not one of the exchange's)."""
    reason = producer_problem(record.topic, record.headers)
    if reason is None:
        return None
    expected = writer_of(record.topic)
    assert expected is not None
    return Flag(record, producer_of(record.headers), expected, reason)


async def record_flags(
    conn: asyncpg.Connection, flagged: Sequence[tuple[int, uuid.UUID, str, Flag]]
) -> None:
    """Insert (archive_seq, event id, event type, flag) rows; run in the archive transaction."""
    if not flagged:
        return
    await conn.executemany(
        "INSERT INTO producer_flags (archive_seq, event_id, topic, kafka_partition,"
        " kafka_offset, event_type, claimed, expected, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        [
            (
                seq,
                eid,
                f.record.topic,
                f.record.partition,
                f.record.offset,
                etype,
                f.claimed,
                f.expected,
                f.reason,
            )
            for seq, eid, etype, f in flagged
        ],
    )
    for seq, eid, etype, f in flagged:
        log.warning(
            "producer is not the topic's writer",
            extra={
                "archive_seq": seq,
                "event_id": str(eid),
                "event_type": etype,
                "topic": f.record.topic,
                "partition": f.record.partition,
                "offset": f.record.offset,
                "reason": f.reason,
            },
        )


async def flags(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every recorded flag, in archive order (for `exchange audit verify`)."""
    return list(
        await conn.fetch(
            "SELECT archive_seq, event_id, topic, kafka_partition, kafka_offset, event_type,"
            " claimed, expected, reason FROM producer_flags ORDER BY archive_seq"
        )
    )


async def rescan(conn: asyncpg.Connection) -> list[tuple[int, uuid.UUID, str, str]]:
    """(archive_seq, event id, topic, reason) of every archived row whose producer header is
    not its topic's writer, recomputed from the archived headers (which the hash chain covers,
    so deleting a `producer_flags` row hides nothing from this).

    Rows archived before services stamped the header carry none and are not judged: checking
    starts at the first archived row that has one."""
    start = await conn.fetchval(  # jsonb_build_array: the same whatever codec conn has
        "SELECT min(archive_seq) FROM archive"
        " WHERE headers @> jsonb_build_array(jsonb_build_array($1::text))",
        PRODUCER,
    )
    found: dict[int, tuple[int, uuid.UUID, str, str]] = {}
    for r in await flags(conn):  # including any flagged before the first stamped row
        found[r["archive_seq"]] = (r["archive_seq"], r["event_id"], r["topic"], r["reason"])
    if start is None:
        return [found[k] for k in sorted(found)]
    async with conn.transaction():
        async for r in conn.cursor(
            "SELECT archive_seq, event_id, topic, headers FROM archive WHERE archive_seq >= $1"
            " ORDER BY archive_seq",
            start,
        ):
            headers = json.loads(r["headers"]) if isinstance(r["headers"], str) else r["headers"]
            reason = producer_problem(r["topic"], headers)
            if reason is not None:
                found[r["archive_seq"]] = (r["archive_seq"], r["event_id"], r["topic"], reason)
    return [found[k] for k in sorted(found)]
