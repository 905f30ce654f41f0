"""Events the ledger archived but set aside instead of projecting: recorded, then reported.

The record (`projection_set_aside`) is written in the batch's own transaction, so an event is
never both skipped and forgotten; the dead letter that reports it on `<topic>.dlq` is published
after the commit and marked published, and whatever a crash left unpublished goes out at the
next start (as the ledger's checkpoints do). The dead letter's id is derived from the event's,
under a label of the ledger's own: the topic's processor may park the same record for its own
reasons, and neither dead letter may hide the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.envelope import Envelope, derive_id
from schemas.messages import Message
from services.ledger.batch_projection import REFUSED_BY_POSTGRES
from services.platform.kafka import Record, headers_for
from services.platform.processor import dead_letter

log = logging.getLogger(__name__)

CONSUMER = "ledger"


async def record_set_aside(
    conn: asyncpg.Connection, items: Sequence[tuple[Record, Envelope[Message], int, str]]
) -> None:
    """Record each (record, event, archive_seq, reason) set aside, with its dead letter."""
    rows = []
    for record, env, seq, reason in items:
        out = dead_letter(
            record,
            f"projection set aside: {reason}",
            CONSUMER,
            event_id=derive_id(env.event_id, "ledger/set-aside"),
        )
        rows.append(
            (env.event_id, seq, record.topic, env.event_type, reason, out.event_id, out.topic,
             out.key, out.value)
        )  # fmt: skip
        log.warning(
            "event archived but set aside: its projection failed",
            extra={"event_id": str(env.event_id), "topic": record.topic, "reason": reason},
        )
    await conn.executemany(
        "INSERT INTO projection_set_aside (event_id, archive_seq, topic, event_type, reason,"
        " dead_letter_id, dead_letter_topic, dead_letter_key, dead_letter)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING",
        rows,
    )


async def publish_set_aside(conn: asyncpg.Connection, publisher: AIOKafkaProducer) -> int:
    """Publish the dead letters not yet published, await their acks, mark them; return how
    many. At least once: a crash before the mark publishes again, under the same id."""
    pending = await conn.fetch(
        "SELECT event_id, dead_letter_id, dead_letter_topic, dead_letter_key, dead_letter"
        " FROM projection_set_aside WHERE published_at IS NULL ORDER BY archive_seq"
    )
    if not pending:
        return 0
    sent = [
        await publisher.send(
            r["dead_letter_topic"],
            key=r["dead_letter_key"],
            value=r["dead_letter"],
            headers=headers_for(r["dead_letter_id"], "MessageDeadLettered"),
        )
        for r in pending
    ]
    for ack in sent:
        await ack
    await conn.execute(
        "UPDATE projection_set_aside SET published_at = now() WHERE event_id = ANY($1::uuid[])",
        [r["event_id"] for r in pending],
    )
    return len(pending)


async def refused_by_postgres(conn: asyncpg.Connection) -> frozenset[uuid.UUID]:
    """The events the ledger set aside because PostgreSQL refused them, not by a pure rule:
    the auditor's replay cannot recompute these, so it takes them from the record (and
    recomputes every other set-aside itself)."""
    rows = await conn.fetch(
        "SELECT event_id FROM projection_set_aside WHERE starts_with(reason, $1)",
        REFUSED_BY_POSTGRES,
    )
    return frozenset(r["event_id"] for r in rows)
