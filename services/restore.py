"""Bringing an empty broker back from PostgreSQL, so a forgetful broker loses nothing.

The embedded broker keeps its log in memory. PostgreSQL holds every archived event with the
topic and partition it was read from, and every posting the gateway acknowledged. On start,
if the broker holds none of the exchange's messages, this writes back:

1. every archived message, in archive order, to its original topic and partition (so each
   partition's order is preserved), then moves the ledger's positions to the end of that;
2. every acknowledged posting not yet archived, in acceptance order.

Processors then replay their inputs and write only what is missing (event ids are derived, so
nothing is decided twice); the ledger ignores ids it already holds.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from schemas.topics import BY_NAME, all_topic_names
from services.ledger.archive import CONSUMER
from services.platform.db import connect
from services.platform.kafka import partition_for, producer, topics_are_empty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote: archived messages and not-yet-archived postings."""

    skipped: bool
    archived: int = 0
    postings: int = 0


def _progress(done: int, total: int) -> None:
    if total and sys.stderr.isatty():
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(
            f"\rrestoring broker [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        )
        if done == total:
            sys.stderr.write("\n")


async def restore_if_empty(bootstrap: str, dsn: str, batch: int = 5000) -> RestoreReport:
    """Restore the broker from PostgreSQL when it holds none of the exchange's messages."""
    if not topics_are_empty(bootstrap, all_topic_names()):
        return RestoreReport(skipped=True)
    conn = await connect(dsn)
    writer = producer(bootstrap)
    try:
        total = await conn.fetchval("SELECT count(*) FROM archive")
        ends: dict[tuple[str, int], int] = {}
        done, last = 0, 0
        while True:
            rows = await conn.fetch(
                "SELECT archive_seq, topic, kafka_partition, kafka_key, value, headers"
                " FROM archive WHERE archive_seq > $1 ORDER BY archive_seq LIMIT $2",
                last,
                batch,
            )
            if not rows:
                break
            futures = []
            for r in rows:
                headers = [(str(k), str(v).encode()) for k, v in r["headers"]]  # jsonb: a list
                futures.append(
                    (
                        (r["topic"], r["kafka_partition"]),
                        writer.send(
                            r["topic"],
                            key=r["kafka_key"],
                            value=r["value"],
                            partition=r["kafka_partition"],
                            headers=headers,
                        ),
                    )
                )
            writer.flush()
            for tp, fut in futures:
                meta = fut.get(timeout=30)
                ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
            last = rows[-1]["archive_seq"]
            done += len(rows)
            _progress(done, total)
        async with conn.transaction():
            await conn.execute("DELETE FROM consumer_positions WHERE consumer = $1", CONSUMER)
            await conn.executemany(
                "INSERT INTO consumer_positions (consumer, topic, kafka_partition, next_offset)"
                " VALUES ($1, $2, $3, $4)",
                [(CONSUMER, t, p, o) for (t, p), o in ends.items()],
            )
        pending = await conn.fetch(
            "SELECT posting_id, topic, kafka_key, value, event_type FROM postings"
            " WHERE archived_at IS NULL ORDER BY seq"
        )
        for r in pending:
            spec = BY_NAME[r["topic"]]
            writer.send(
                spec.name,
                key=r["kafka_key"],
                value=r["value"],
                partition=partition_for(r["kafka_key"], spec.partitions),
                headers=[
                    ("event_id", str(r["posting_id"]).encode()),
                    ("event_type", r["event_type"].encode()),
                ],
            )
        writer.flush()
        if pending:
            await conn.execute(
                "UPDATE postings SET published_at = now() WHERE posting_id = ANY($1::uuid[])",
                [r["posting_id"] for r in pending],
            )
        report = RestoreReport(skipped=False, archived=done, postings=len(pending))
        log.info("broker restored", extra={"archived": done, "postings": len(pending)})
        return report
    finally:
        writer.close()
        await conn.close()
