"""Archive rate against raw COPY, and the auditor's replay rate from the archive and from Kafka.

1. Archive rate: the ledger's write path (`archive_batch`: rows, hashes, projections and
   positions in one transaction) over the first `--archive-events` records of the log, against
   a raw `COPY` of the same rows into a table shaped like the archive, on the same database.
   The raw COPY is the limit; the ratio is printed.
2. Replay rate from the archive: a `--events` log (default one million records) is bulk-loaded
   into a fresh database's archive, the live read models are filled from it, then
   `replay_projections` (fold in memory, COPY into a scratch schema, compare with live) is
   timed. Goal: 100k events per second; the ratio to it is printed, with the rate of the fold
   alone and the rate of merely reading the archive (the limit) measured in the same run.
3. Replay rate from Kafka: the same log produced to the embedded broker, then read back with
   the CLI's reader and replayed; the ratio to the bare read is printed.

The log is a generated city's week (intake events, the router's copies on matcher.inputs, the
matcher's requests, grants and decisions) repeated with fresh ids until it has enough records.

    .venv/bin/python bench/replay.py --events 1000000 --archive-events 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.codec import decode  # noqa: E402
from schemas.topics import all_topic_names  # noqa: E402
from services.audit.replay.rebuild import (  # noqa: E402
    _columns,
    _copy_rows,
    fold_archive,
    read_topics,
    replay_projections,
)
from services.audit.replay.simulate import simulate  # noqa: E402
from services.demo.city import generate  # noqa: E402
from services.domain.projection_fold import TABLE_KEYS  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.postgres import EmbeddedPostgres  # noqa: E402
from services.ledger.archive import archive_batch, prepare  # noqa: E402
from services.platform.db import connect, migrate  # noqa: E402
from services.platform.gc_pause import paused_gc  # noqa: E402
from services.platform.kafka import Record, ensure_topics, read_all  # noqa: E402

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def make_log(n: int) -> list[Record]:
    """`n` records: a simulated city's log repeated, every id replaced per copy."""
    block = simulate(generate(needs=120, volunteers=60, funds=8, seed=3).events)
    out: list[Record] = []
    copy = 0
    while len(out) < n:
        fresh: dict[bytes, bytes] = {}

        def sub(m: re.Match[bytes], fresh: dict[bytes, bytes] = fresh) -> bytes:
            got = fresh.get(m.group(0))
            if got is None:
                got = fresh[m.group(0)] = str(uuid.uuid4()).encode()
            return got

        for r in block:
            out.append(
                Record(
                    r.topic,
                    r.partition,
                    r.offset + copy * len(block),
                    UUID.sub(sub, r.key or b""),
                    UUID.sub(sub, r.value),
                    tuple((k, UUID.sub(sub, v)) for k, v in r.headers),
                    len(out),
                )
            )
            if len(out) == n:
                break
        copy += 1
    return out


def archive_row(r: Record) -> tuple[object, ...]:
    env = decode(r.value)
    headers = [[k, v.decode()] for k, v in r.headers]
    return (
        env.event_id,
        r.topic,
        r.partition,
        r.offset,
        r.key,
        r.value,
        json.dumps(headers),
        env.event_type,
        env.stream_id,
        env.stream_seq,
        env.recorded_at,
    )


COLS = [
    "event_id",
    "topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_key",
    "value",
    "headers",
    "event_type",
    "stream_id",
    "stream_seq",
    "recorded_at",
]


async def new_database(admin_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await conn.close()
    url = admin_url.replace("/postgres?", f"/{name}?")
    await migrate(url)
    return url


async def archive_rate(admin_url: str, log: list[Record], batch: int) -> None:
    url = await new_database(admin_url)
    conn = await connect(url)
    try:
        rows = [archive_row(r) for r in log]
        # headers as text: the raw table takes them as text, like the ledger's staging table
        await conn.execute(
            "CREATE TABLE raw_archive (LIKE archive INCLUDING DEFAULTS);"
            " ALTER TABLE raw_archive ALTER COLUMN headers TYPE text"
        )
        started = time.monotonic()
        for i in range(0, len(rows), 5000):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "raw_archive", records=rows[i : i + 5000], columns=COLS
                )
        raw = len(rows) / (time.monotonic() - started)

        await prepare(conn)
        started = time.monotonic()
        for i in range(0, len(log), batch):
            await archive_batch(conn, log[i : i + batch])
        ledger = len(log) / (time.monotonic() - started)
    finally:
        await conn.close()
    print(f"archive: {len(log):,} events in batches of {batch}")
    print(f"  raw COPY (limit):          {raw:>10,.0f} events/s")
    print(f"  ledger archive_batch:      {ledger:>10,.0f} events/s  ({ledger / raw:.1%} of raw)")


async def load_archive(admin_url: str, log: list[Record]) -> str:
    """A database whose archive holds `log` and whose read models are what it projects."""
    url = await new_database(admin_url)
    conn = await connect(url)
    try:
        await conn.execute(
            "CREATE TEMP TABLE archive_h (LIKE archive INCLUDING DEFAULTS);"
            " ALTER TABLE archive_h ALTER COLUMN headers TYPE text;"
            " ALTER TABLE archive_h ALTER COLUMN archive_seq DROP DEFAULT"
        )
        rows = [(i, *archive_row(r)) for i, r in enumerate(log)]
        for i in range(0, len(rows), 50_000):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "archive_h", records=rows[i : i + 50_000], columns=["archive_seq", *COLS]
                )
                await conn.execute(
                    f"INSERT INTO archive ({', '.join(COLS)})"
                    f" SELECT {', '.join(c if c != 'headers' else 'headers::jsonb' for c in COLS)}"
                    " FROM archive_h ORDER BY archive_seq ON CONFLICT DO NOTHING;"
                    " TRUNCATE archive_h"
                )
        async with conn.transaction():
            fold = await fold_archive(conn)
            for table in TABLE_KEYS:
                rows_ = fold.rows(table)
                if rows_:
                    await _copy_rows(
                        conn, "public", table, await _columns(conn, "public", table), rows_
                    )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return url


async def replay_rate_archive(url: str, goal: float) -> None:
    conn = await connect(url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM archive")
        started = time.monotonic()
        last = 0
        while True:
            rows = await conn.fetch(
                "SELECT archive_seq, event_id, event_type, value FROM archive"
                " WHERE archive_seq > $1 ORDER BY archive_seq LIMIT 20000",
                last,
            )
            if not rows:
                break
            last = rows[-1][0]
        read = n / (time.monotonic() - started)

        # as `exchange audit replay` runs: the cyclic collector paused for the command
        with paused_gc():
            started = time.monotonic()
            async with conn.transaction(isolation="repeatable_read"):
                await fold_archive(conn)
            folded = n / (time.monotonic() - started)

            report = await replay_projections(conn)
            rate = n / report.seconds
            report2 = await replay_projections(conn, jobs=2)
            rate2 = n / report2.seconds
    finally:
        await conn.close()
    print(f"replay from the archive: {n:,} events ({report.projected:,} projected)")
    print(f"  reading the archive only (limit): {read:>10,.0f} events/s")
    print(f"  fold in memory only:              {folded:>10,.0f} events/s")
    print(
        f"  replay (fold + COPY + compare):   {rate:>10,.0f} events/s"
        f"  ({rate / read:.1%} of reading, {rate / goal:.1%} of the {goal:,.0f}/s goal)"
    )
    print(
        f"  replay, decoding in 2 processes:  {rate2:>10,.0f} events/s"
        f"  ({rate2 / read:.1%} of reading, {rate2 / goal:.1%} of the goal)"
    )
    print(f"  equal: {report.equal and report2.equal} {dict(report.differences)}")


async def produce(bootstrap: str, log: list[Record]) -> None:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024,
                         enable_idempotence=False, acks=1)  # fmt: skip
    await p.start()
    try:
        pending = []
        for r in log:
            pending.append(
                await p.send(
                    r.topic, r.value, key=r.key, partition=r.partition, headers=list(r.headers)
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await p.stop()


async def replay_rate_kafka(url: str, bootstrap: str, n: int, goal: float) -> None:
    started = time.monotonic()
    with paused_gc():  # as the command runs (it pauses the collector for its whole run)
        records = await read_topics(bootstrap, all_topic_names())
    read = len(records) / (time.monotonic() - started)
    started_old = time.monotonic()
    old = await asyncio.to_thread(lambda: sum(1 for _ in read_all(bootstrap, all_topic_names())))
    read_old = old / (time.monotonic() - started_old)
    started += time.monotonic() - started_old  # the comparison read is not part of the replay
    conn = await connect(url)
    try:
        with paused_gc():  # as `exchange audit replay --from kafka` runs
            report = await replay_projections(conn, records)
    finally:
        await conn.close()
    total = time.monotonic() - started
    rate = len(records) / total
    print(f"replay from Kafka: {len(records):,} records read ({n:,} produced)")
    print(f"  kafka-python read_all (tooling): {read_old:>10,.0f} events/s")
    print(f"  reading the topics only (limit): {read:>10,.0f} events/s")
    print(f"  replay (read + fold + COPY + compare): {rate:>10,.0f} events/s"
          f"  ({rate / read:.1%} of reading, {rate / goal:.1%} of the goal)")  # fmt: skip
    print(f"  equal: {report.equal} {dict(report.differences)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="records in the replayed log")
    ap.add_argument("--archive-events", type=int, default=50_000, help="records archived")
    ap.add_argument("--batch", type=int, default=2000, help="ledger batch size")
    ap.add_argument("--goal", type=float, default=100_000.0, help="events/s")
    ap.add_argument("--skip-kafka", action="store_true")
    args = ap.parse_args()

    started = time.monotonic()
    log = make_log(args.events)
    print(f"generated {len(log):,} records in {time.monotonic() - started:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres.start(Path(tmp) / "pg" / "data")
        broker = None
        try:
            asyncio.run(archive_rate(pg.admin_url, log[: args.archive_events], args.batch))
            url = asyncio.run(load_archive(pg.admin_url, log))
            asyncio.run(replay_rate_archive(url, args.goal))
            if not args.skip_kafka:
                broker = EmbeddedBroker.start(Path(tmp) / "broker.log")
                ensure_topics(broker.bootstrap)
                started = time.monotonic()
                asyncio.run(produce(broker.bootstrap, log))
                print(f"produced {len(log):,} records in {time.monotonic() - started:.1f} s")
                asyncio.run(replay_rate_kafka(url, broker.bootstrap, len(log), args.goal))
        finally:
            if broker is not None:
                broker.process.kill()
                broker.process.wait()
            pg.stop()


if __name__ == "__main__":
    main()
