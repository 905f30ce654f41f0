"""No single event may stop a consumer (issue: "one accepted request stops the whole exchange").

The issue's four hostile postings (NUL in a description; goods worth more than `Money` holds; a
deadline, and an availability, in the last hours of year 9999 written with a negative offset) are
put on the topics as intake makes them, among valid events. Each consumer, running for real on
the embedded broker and PostgreSQL, must set the hostile ones aside (dead-letter topic, reason,
audit record) and go on: the valid events after them are archived, projected and matched, and
the auditor's replay makes the same choices as the live run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import decode, encode
from schemas.envelope import Envelope
from schemas.messages import MatchProposed, Message
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS
from services.audit.replay.rebuild import kafka_matcher_log, replay_matcher, replay_projections
from services.embedded.broker import EmbeddedBroker
from services.ledger.service import run_ledger
from services.matcher.processor import Router
from services.matcher.worker import MatcherWorker
from services.platform.kafka import ensure_topics, headers_for, producer, read_all
from services.platform.processor import catch_up
from services.settings import Settings
from tests.hostile import need_posted, pledge_made, the_four

pytestmark = pytest.mark.integration

TOPIC = {
    "NeedPosted": "needs.events",
    "NeedAmended": "needs.events",
    "PledgeMade": "volunteers.events",
}


def publish(bootstrap: str, items: list[tuple[Envelope[Message], bytes]]) -> None:
    """Each (event, its bytes) on its events topic, all on partition 0, in this order."""
    w = producer(bootstrap)
    for env, value in items:
        w.send(
            TOPIC[env.event_type],
            key=b"district",
            value=value,
            partition=0,
            headers=headers_for(env.event_id, env.event_type),
        )
    w.flush()
    w.close()


async def until(
    check: Callable[[], Awaitable[bool]], task: asyncio.Task[None], within: float = 30
) -> None:
    """Wait for `check`, failing at once if the service under test has stopped (crashed)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if task.done():
            task.result()  # raises the service's exception
            raise AssertionError("the service stopped")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_the_ledger_sets_aside_each_hostile_event_and_goes_on(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap)
    hostile = the_four()
    before = need_posted()
    after = [need_posted() for _ in range(3)]
    pledge = pledge_made()
    publish(
        broker.bootstrap,
        [
            (before, _bytes(before)),
            *((env, value) for _, env, value in hostile),
            *((env, _bytes(env)) for env in [*after, pledge]),
        ],
    )
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))

    # The schemas now refuse every one of these values, so the ledger cannot even decode them:
    # it archives their bytes (the archive is the log) and projects nothing from them; their
    # owning processor, not running here, is the one that parks them on the dead-letter topic.
    # An event that decodes but cannot be projected is set aside by the ledger itself
    # (tests/unit/test_set_aside.py and the property test cover that path).

    async def done() -> bool:
        return (
            await db.fetchval("SELECT count(*) FROM rm_needs") == 4
            and await db.fetchval(  # the valid pledge, after them all, is journalled
                "SELECT count(*) FROM journal_lines WHERE account = $1",
                f"pledged:{pledge.payload.volunteer_id}",  # type: ignore[attr-defined]
            )
            == 1
        )

    try:
        await until(done, task)
    finally:
        stop.set()
        await task

    # every event is in the archive (it is the log); only the hostile ones were not projected
    ids = [env.event_id for _, env, _ in hostile]
    assert await db.fetchval("SELECT count(*) FROM archive WHERE event_id = ANY($1)", ids) == 5
    projected = {r["need_id"] for r in await db.fetch("SELECT need_id FROM rm_needs")}
    assert projected == {e.payload.need_id for e in [before, *after]}  # type: ignore[attr-defined]

    # the auditor's replay makes the same skips, so replay equals live
    report = await replay_projections(db)
    assert report.equal, [str(d) for d in report.shown]

    # a restart reads the same log and changes nothing
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    await until(lambda: _ready(db), task)
    stop.set()
    await task
    assert (await replay_projections(db)).equal


async def _ready(db: asyncpg.Connection) -> bool:
    return bool(
        await db.fetchval(
            "SELECT ready FROM service_heartbeats WHERE service = 'ledger'"
            " AND beat_at > now() - interval '2 seconds'"
        )
    )


def _bytes(env: Envelope[Message]) -> bytes:
    return encode(env)


async def test_the_router_and_a_matcher_worker_set_aside_hostile_events_and_still_match(
    broker: EmbeddedBroker, database_url: str, tmp_path: object
) -> None:
    ensure_topics(broker.bootstrap)
    hostile = the_four()
    need = need_posted()
    pledge = pledge_made()
    publish(
        broker.bootstrap,
        [
            *((env, value) for _, env, value in hostile),
            (need, _bytes(need)),
            (pledge, _bytes(pledge)),
        ],
    )
    await asyncio.to_thread(catch_up, broker.bootstrap, Router())
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=database_url,
        EXCHANGE_VAR_DIR=str(tmp_path),
        EXCHANGE_TICK_SECONDS=0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(MatcherWorker(settings, "matcher-1").run(stop))
    need_id = need.payload.need_id  # type: ignore[attr-defined]

    async def matched() -> bool:
        found = await asyncio.to_thread(read_all, broker.bootstrap, [MATCHES_EVENTS.name])
        return any(
            isinstance(p := decode(r.value).payload, MatchProposed) and p.need_id == need_id
            for r in found
        )

    try:
        await until(matched, task, within=45)
    finally:
        stop.set()
        await task

    # the schemas refuse these values, so the router (their first reader) parks each one as
    # undecodable and none reaches the matcher; the valid need after them was still matched
    letters = [
        decode(r.value).payload
        for r in read_all(
            broker.bootstrap,
            ["needs.events.dlq", "volunteers.events.dlq", f"{MATCHER_INPUTS.name}.dlq"],
        )
    ]
    parked = {
        uuid.UUID(json.loads(bytes.fromhex(x.original_value_hex))["event_id"])  # type: ignore[attr-defined]
        for x in letters
    }
    assert parked == {env.event_id for _, env, _ in hostile}
    assert {x.consumer for x in letters} == {"matcher-router"}  # type: ignore[attr-defined]

    # a fresh replay of matcher.inputs sets aside the same inputs and decides the same
    inputs, logged = kafka_matcher_log(
        read_all(
            broker.bootstrap,
            [MATCHER_INPUTS.name, MATCHES_EVENTS.name, f"{MATCHER_INPUTS.name}.dlq"],
        )
    )
    report = replay_matcher(inputs, logged)
    assert report.equal, [str(d) for d in report.differences]
