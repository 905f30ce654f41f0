"""The ledger archives every event exactly once, positions in the same transaction, and can
refill an empty broker (restore) so that nothing is lost when the broker forgets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import encode
from schemas.messages import DonationReceived, FundOpened, Message, NeedPosted
from schemas.specs import DonationSpec, FundSpec, NeedSpec
from services.domain.intake import stream_of
from services.embedded.broker import EmbeddedBroker
from services.ledger.service import run_ledger
from services.platform.kafka import ensure_topics, headers_for, producer, read_all
from services.restore import restore_if_empty
from services.settings import Settings
from tests import factories as f

pytestmark = pytest.mark.integration


def publish(
    bootstrap: str, topic: str, payloads: list[Message], repeat_first: bool = False
) -> list[uuid.UUID]:
    w = producer(bootstrap)
    ids = []
    envs = [f.envelope(p, stream=stream_of(p)) for p in payloads]
    if repeat_first:
        envs.append(envs[0])  # an at-least-once redelivery
    for env in envs:
        key = env.stream_id.split(":")[1].encode()
        w.send(topic, key=key, value=encode(env), headers=headers_for(env.event_id, env.event_type))
        ids.append(env.event_id)
    w.flush()
    w.close()
    return ids


async def wait_until(conn: asyncpg.Connection, sql: str, expected: int, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got = await conn.fetchval(sql)
        if got == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{sql!r} gave {got}, expected {expected}")
        await asyncio.sleep(0.05)


EVENTS_ARCHIVED = "SELECT count(*) FROM archive WHERE topic <> 'ledger.checkpoints'"
"""Archived events other than the ledger's own checkpoints (a clean stop publishes one)."""


def needs(n: int) -> list[Message]:
    return [
        NeedPosted(
            need_id=uuid.uuid4(), need=NeedSpec.model_validate(f.volunteer_need(title=f"需求{i}"))
        )
        for i in range(n)
    ]


async def test_every_event_is_archived_once_across_a_restart(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap)
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    publish(broker.bootstrap, "needs.events", needs(50), repeat_first=True)

    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, EVENTS_ARCHIVED, 50)
    stop.set()
    await task

    publish(broker.bootstrap, "needs.events", needs(20))
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, EVENTS_ARCHIVED, 70)
    await wait_until(db, "SELECT count(*) FROM rm_needs", 70)
    stop.set()
    await task
    positions = await db.fetchval(
        "SELECT sum(next_offset) FROM consumer_positions WHERE topic = 'needs.events'"
    )
    assert positions == 71  # 70 events and one redelivery were read; each archived once


async def test_money_is_journalled_in_balanced_entries(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap)
    fund_id = uuid.uuid4()
    publish(
        broker.bootstrap,
        "funds.events",
        [
            FundOpened(fund_id=fund_id, fund=FundSpec.model_validate(f.fund())),
            DonationReceived(
                fund_id=fund_id,
                donation_id=uuid.uuid4(),
                donation=DonationSpec.model_validate(f.donation(800_000)),
            ),
        ],
    )
    stop = asyncio.Event()
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    task = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, "SELECT count(*) FROM journal_lines", 2)
    stop.set()
    await task
    assert await db.fetchval("SELECT sum(amount_minor) FROM journal_lines") == 0
    assert (
        await db.fetchval(
            "SELECT amount_minor FROM journal_lines WHERE account = $1", f"fund:{fund_id}:available"
        )
        == 800_000
    )


async def test_an_empty_broker_is_refilled_from_postgresql(
    broker: EmbeddedBroker,
    start_broker: Callable[[], EmbeddedBroker],
    database_url: str,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    ensure_topics(broker.bootstrap)
    ids = publish(broker.bootstrap, "needs.events", needs(30))
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, "SELECT count(*) FROM archive", 30)
    stop.set()
    await task
    original = [(r.partition, r.event_id) for r in read_all(broker.bootstrap, ["needs.events"])]
    # a posting the gateway acknowledged but nobody archived before the broker was lost
    pending = uuid.uuid4()
    await db.execute(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " request_hash, response)"
        " VALUES ($1, 'needs.postings', $2, $3, 'PostNeed', 'o', 'h', '{}'::jsonb)",
        pending,
        b"k",
        b"{}",
    )

    fresh = start_broker()
    ensure_topics(fresh.bootstrap)
    report = await restore_if_empty(fresh.bootstrap, database_url)
    assert (report.skipped, report.archived, report.postings) == (False, 30, 1)
    restored = [(r.partition, r.event_id) for r in read_all(fresh.bootstrap, ["needs.events"])]
    assert restored == original  # same partitions, same order
    assert [r.event_id for r in read_all(fresh.bootstrap, ["needs.postings"])] == [pending]
    assert {e for _, e in restored} == set(ids)
    assert (await restore_if_empty(fresh.bootstrap, database_url)).skipped  # never twice


async def test_a_decision_waits_until_its_input_is_archived_on_matcher_inputs(
    db: asyncpg.Connection,
) -> None:
    """A decision archived ahead of its input could disagree with a replay after a broker
    loss; the ledger holds it back (and reads its partition again) until the input is in."""
    import json

    from services.ledger.archive import archive_batch, hold_back_decisions, prepare
    from services.platform.kafka import Record

    await prepare(db)
    cause = uuid.uuid4()

    def decision(offset: int) -> Record:
        body = {"causation_id": str(cause), "event_type": "MatchProposed"}
        return Record(
            "matches.events",
            2,
            offset,
            b"k",
            json.dumps(body).encode(),
            (("event_id", str(uuid.uuid4()).encode()),),
        )

    other = Record("needs.events", 0, 5, b"k", b"{}", (("event_id", str(uuid.uuid4()).encode()),))
    keep, held = await hold_back_decisions(db, [decision(7), decision(8), other])
    assert keep == [other] and held == {("matches.events", 2): 7}

    the_input = Record(
        "matcher.inputs",
        1,
        0,
        b"nanjing",
        b"{}",
        (("event_id", str(cause).encode()), ("event_type", b"NeedPosted")),
    )
    keep, held = await hold_back_decisions(db, [the_input, decision(7)])
    assert len(keep) == 2 and held == {}  # in the same batch: fine
    await archive_batch(db, [the_input])
    keep, held = await hold_back_decisions(db, [decision(7)])
    assert len(keep) == 1 and held == {}  # already archived: fine


async def test_the_ledger_becomes_ready_under_a_steady_load(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Ready means caught up, not idle: under a steady stream of events a fetch never comes
    back empty, and a ledger that waited for one stayed "not ready" (and /healthz red) for
    minutes after a restore."""
    ensure_topics(broker.bootstrap)
    publish(broker.bootstrap, "needs.events", needs(200))  # a backlog, as after a restore
    steady = asyncio.Event()

    def produce() -> None:
        while not steady.is_set():
            publish(broker.bootstrap, "needs.events", needs(5))

    producing = asyncio.create_task(asyncio.to_thread(produce))
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    try:
        await wait_until(
            db, "SELECT count(*) FROM service_heartbeats WHERE service = 'ledger' AND ready", 1
        )
        assert await db.fetchval(EVENTS_ARCHIVED) >= 200, "ready only once the backlog is in"
    finally:
        steady.set()
        await producing
        stop.set()
        await task
