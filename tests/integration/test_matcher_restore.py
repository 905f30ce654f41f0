"""Matcher snapshots across a broker that forgot: a snapshot is never trusted by offset alone.

The embedded broker keeps its log in memory; a restore brings back only what the ledger
archived, renumbered. A snapshot taken ahead of the archive (the ledger stalled) reflects
inputs the restore does not bring back, and even a snapshot whose inputs were all archived
may stand for decisions that were not. Either way a worker resuming from it would skip
decisions for good."""

from __future__ import annotations

import asyncio
import logging
import pickle
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import decode
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS, all_topic_names, partitions_of
from services.demo.city import generate
from services.embedded.broker import EmbeddedBroker
from services.ledger.archive import archive_batch, hold_back_decisions, prepare
from services.matcher.processor import PartitionMatcher
from services.matcher.worker import MatcherWorker
from services.platform.db import connect, connect_pool
from services.platform.kafka import Record, ensure_topics, producer, read_all
from services.restore import restore_if_empty
from services.settings import Settings
from tests.integration.test_matcher_workers import (
    Services,
    first_copies,
    publish,
    replay_all,
    wait_for,
)
from tests.partitioned import partition_log

pytestmark = pytest.mark.integration

INTAKE = ["needs.events", "funds.events", "volunteers.events"]


def settle(bootstrap: str, inputs: set[uuid.UUID], services: Services, why: str) -> None:
    """Wait until every input is on matcher.inputs and every decision a replay of the log
    makes is on the topics, with the same bytes, and nothing else on matches.events."""
    last: dict[str, object] = {"n": -1}

    def settled() -> bool:
        forwarded = inputs <= set(first_copies(bootstrap, [MATCHER_INPUTS.name]))
        last["inputs"] = "all forwarded" if forwarded else "not all forwarded yet"
        if not forwarded:
            return False
        expected, n = replay_all(bootstrap)
        decisions = first_copies(bootstrap, [MATCHES_EVENTS.name])
        cross = first_copies(bootstrap, [MATCHER_INPUTS.name])
        missing = [i for i in expected if i not in decisions and i not in cross]
        differ = [
            i
            for i, value in expected.items()
            if (i in decisions and decisions[i].value != value)
            or (i not in decisions and i in cross and cross[i].value != value)
        ]
        extra = set(decisions) - set(expected)
        done = not missing and not differ and not extra and n == last["n"]
        last.update(n=n, missing=len(missing), differ=len(differ), extra=len(extra))
        last["sample"] = sorted({decode(expected[i]).event_type for i in missing})
        return done

    wait_for(settled, 120, why, services, last)


def archive_prefixes(
    bootstrap: str, dsn: str, inputs_upto: dict[int, int], decisions_upto: float
) -> None:
    """Archive what a ledger that fell behind would have: the intake topics, each partition of
    matcher.inputs up to its given offset, and each partition of matches.events up to the given
    fraction (a decision only once its input is in, as the ledger holds it back)."""
    records = list(read_all(bootstrap, [*INTAKE, MATCHER_INPUTS.name, MATCHES_EVENTS.name]))
    by_tp: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        by_tp[(r.topic, r.partition)].append(r)
    first = [r for t in INTAKE for p in range(partitions_of(t)) for r in by_tp.get((t, p), [])]
    first += [
        r
        for p, upto in inputs_upto.items()
        for r in by_tp[(MATCHER_INPUTS.name, p)]
        if r.offset < upto
    ]
    decisions = []
    for (topic, _), rs in by_tp.items():
        if topic == MATCHES_EVENTS.name:
            decisions += rs[: int(len(rs) * decisions_upto)]

    async def run() -> None:
        conn = await connect(dsn)
        try:
            await prepare(conn)
            await archive_batch(conn, first)
            keep, _ = await hold_back_decisions(conn, decisions)
            await archive_batch(conn, keep)
        finally:
            await conn.close()

    asyncio.run(run())


async def snapshots(dsn: str) -> dict[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT kafka_partition, next_offset FROM matcher_snapshots")
        return {r["kafka_partition"]: r["next_offset"] for r in rows}
    finally:
        await conn.close()


def test_after_a_restore_every_decision_the_restored_log_replays_to_is_on_the_topics(
    broker: EmbeddedBroker,
    start_broker: Callable[[], EmbeddedBroker],
    database_url: str,
    tmp_path: Path,
) -> None:
    ensure_topics(broker.bootstrap)
    sc = generate(needs=200, volunteers=100, funds=8, seed=5)
    before = Services(broker, database_url, tmp_path / "before")
    before.env["EXCHANGE_SNAPSHOT_EVENTS"] = "40"
    (tmp_path / "before").mkdir()
    try:
        before.start("matcher-router")
        before.start("matcher-1")
        publish(broker.bootstrap, sc, slice(None))
        opened: set[uuid.UUID] = set()
        produced = set()
        for e in sc.events:  # money for a fund not opened yet is refused by intake
            fund_id = getattr(e.payload, "fund_id", None)
            if e.event_type == "FundOpened":
                opened.add(fund_id)  # type: ignore[arg-type]
            if fund_id is None or fund_id in opened:
                produced.add(e.event_id)
        settle(broker.bootstrap, produced, before, "decisions before the broker forgets")
        wait_for(
            lambda: len(asyncio.run(snapshots(database_url))) == MATCHER_INPUTS.partitions,
            60,
            "a snapshot of every partition",
            before,
        )
    finally:
        before.stop()
    taken = asyncio.run(snapshots(database_url))
    # The ledger stalled: partition 0's inputs are all archived but not all its decisions; the
    # others are archived only half-way to their snapshots (the snapshots are ahead).
    full = max(taken, key=lambda p: taken[p])
    upto = {p: (10**9 if p == full else offset // 2) for p, offset in taken.items()}
    archive_prefixes(broker.bootstrap, database_url, upto, decisions_upto=0.5)

    fresh = start_broker()
    ensure_topics(fresh.bootstrap)
    report = asyncio.run(restore_if_empty(fresh.bootstrap, database_url))
    assert report.snapshots_dropped == len(taken)
    assert asyncio.run(snapshots(database_url)) == {}, "no snapshot survives a restore"
    restored = {r.partition for r in read_all(fresh.bootstrap, [MATCHER_INPUTS.name])}
    assert restored, "the archived inputs are back"

    (tmp_path / "after").mkdir()
    after = Services(fresh, database_url, tmp_path / "after")
    try:
        after.start("matcher-router")
        after.start("matcher-1")
        settle(fresh.bootstrap, produced, after, "every replayed decision after the restore")
    finally:
        after.stop()


async def test_a_snapshot_is_trusted_only_if_the_log_holds_its_last_input_at_its_offset(
    broker: EmbeddedBroker, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The load-time check, which also protects a broker that keeps its log: a snapshot names
    its last input by offset and event id, and is replayed over when they disagree."""
    ensure_topics(broker.bootstrap, all_topic_names())
    log = partition_log(0)
    writer = producer(broker.bootstrap)
    for r in log:
        writer.send(
            MATCHER_INPUTS.name, key=r.key, value=r.value, partition=0, headers=list(r.headers)
        )
    writer.flush()
    writer.close()
    assert [r.event_id for r in read_all(broker.bootstrap, [MATCHER_INPUTS.name])] == [
        r.event_id for r in log
    ]
    proc = PartitionMatcher(0)
    for r in log[:20]:
        proc.handle(r)
    assert proc.anchor is not None and proc.anchor.offset == 19

    worker = MatcherWorker(
        Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url), "m"
    )
    worker.pool = await connect_pool(database_url, max_size=2)
    try:

        async def store(next_offset: int, last_event_id: uuid.UUID | None) -> None:
            assert worker.pool is not None
            await worker.pool.execute(
                "INSERT INTO matcher_snapshots (kafka_partition, next_offset, state,"
                " outputs_from, events_applied, code_version, last_event_id)"
                " VALUES (0, $1, $2, '{}'::jsonb, 20, $3, $4) ON CONFLICT (kafka_partition)"
                " DO UPDATE SET next_offset = $1, last_event_id = $4",
                next_offset,
                pickle.dumps(proc.state),
                worker.version,
                last_event_id,
            )

        async def kept() -> int:
            assert worker.pool is not None
            return int(await worker.pool.fetchval("SELECT count(*) FROM matcher_snapshots"))

        await store(20, proc.anchor.event_id)
        loaded, _ = await worker._load(0)
        assert loaded.next_offset == 20 and loaded.state.arrivals == 20, "the same log: trusted"
        assert await kept() == 1

        caplog.set_level(logging.WARNING, logger="services.matcher.worker")
        for next_offset, last_event_id in [
            (20, log[30].event_id),  # the offset holds another input (a renumbered log)
            (len(log) + 5, proc.anchor.event_id),  # the log ends before the snapshot's offset
            (20, None),  # a snapshot from before snapshots named their last input
        ]:
            await store(next_offset, last_event_id)
            caplog.clear()
            loaded, origin = await worker._load(0)
            assert loaded.next_offset == 0 and loaded.state.arrivals == 0, "replayed from 0"
            assert set(origin.values()) == {0}
            assert any("snapshot discarded" in r.getMessage() for r in caplog.records)
            assert await kept() == 0, "dropped, so that later snapshots are not refused"
    finally:
        await worker.pool.close()
