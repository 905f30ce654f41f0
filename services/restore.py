"""Bringing an empty broker back from PostgreSQL, so a forgetful broker loses nothing.

The embedded broker keeps its log in memory. PostgreSQL holds every archived event with the
topic and partition it was read from, and every posting the gateway acknowledged. On start,
if the broker holds none of the exchange's messages, this writes back:

1. every archived message, in archive order, to its original topic and partition (so each
   partition's order is preserved), then moves the ledger's positions to the end of that;
2. every acknowledged posting not yet archived, in acceptance order.

Before writing anything it deletes the matcher's snapshots (`_drop_snapshots` says why), so
the matcher rebuilds every partition from the restored log.

Processors then replay their inputs and write only what is missing (event ids are derived, so
nothing is decided twice); the ledger ignores ids it already holds.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import asyncpg

from schemas.topics import BY_NAME, all_topic_names
from services.ledger.archive import CONSUMER
from services.platform.access import PRODUCER_HEADER
from services.platform.db import connect
from services.platform.kafka import partition_for, producer, topics_are_empty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote: archived messages and not-yet-archived postings."""

    skipped: bool
    archived: int = 0
    postings: int = 0
    snapshots_dropped: int = 0
    """Matcher snapshots deleted: they describe a log the broker no longer holds."""


def _progress(done: int, total: int) -> None:
    if total and sys.stderr.isatty():
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(
            f"\rrestoring broker [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        )
        if done == total:
            sys.stderr.write("\n")


async def _drop_snapshots(conn: asyncpg.Connection) -> int:
    """Delete every matcher snapshot; return how many there were.

    A snapshot says "the state after these inputs, whose decisions are all on the topics". After
    the broker forgot, neither half can be trusted. Its offsets count a log that is gone: the
    restored partitions hold only archived inputs, renumbered, so an offset points at other
    inputs, and inputs the snapshot reflects may be missing (a snapshot ahead of the archive
    makes the worker skip them when they are forwarded again, as already seen). And even when
    every input it reflects was archived, their decisions may not have been: the ledger reads
    matcher.inputs and matches.events side by side, so a decision the broker acknowledged can
    die with it while its input survives, and a worker resuming from the snapshot would never
    decide it again. Replaying every partition from the start decides all of them again and
    writes what is missing. Deleted before anything is written, so that a restore cut short
    (after which the broker is no longer empty, and this does not run again) leaves none."""
    dropped = len(await conn.fetch("DELETE FROM matcher_snapshots RETURNING kafka_partition"))
    if dropped:
        log.warning(
            "matcher snapshots dropped: the broker forgot the log they describe; the matcher"
            " replays every partition from the start",
            extra={"snapshots": dropped},
        )
    return dropped


async def restore_if_empty(bootstrap: str, dsn: str, batch: int = 5000) -> RestoreReport:
    """Restore the broker from PostgreSQL when it holds none of the exchange's messages."""
    if not topics_are_empty(bootstrap, all_topic_names()):
        return RestoreReport(skipped=True)
    conn = await connect(dsn)
    writer = producer(bootstrap)
    try:
        dropped = await _drop_snapshots(conn)
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
                    # the gateway's outbox row, published as its relay would have
                    (PRODUCER_HEADER, spec.owner.encode()),
                ],
            )
        writer.flush()
        if pending:
            await conn.execute(
                "UPDATE postings SET published_at = now() WHERE posting_id = ANY($1::uuid[])",
                [r["posting_id"] for r in pending],
            )
        report = RestoreReport(
            skipped=False, archived=done, postings=len(pending), snapshots_dropped=dropped
        )
        log.info(
            "broker restored",
            extra={"archived": done, "postings": len(pending), "snapshots_dropped": dropped},
        )
        return report
    finally:
        writer.close()
        await conn.close()
