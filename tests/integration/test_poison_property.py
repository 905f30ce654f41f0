"""Property: whatever hostile-but-schema-valid postings arrive, the exchange stays healthy and
keeps matching.

Hypothesis draws hostile events (NUL and other odd characters, instants at either end of the
calendar in any offset, goods worth up to 10^19 minor units) and puts them, as intake makes
them, through the real router and matchers (`process`, exactly as the services run them) and
the real ledger (`archive_batch` into PostgreSQL). After each draw a valid need and a volunteer
who fits it follow; they must still be matched, archived and projected. At the end the auditor
replays the archive and the matcher's log: both must equal what ran live.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import decode, encode
from schemas.messages import MatchProposed
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS
from services.audit.replay.rebuild import kafka_matcher_log, replay_matcher, replay_projections
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from services.platform.kafka import Record
from tests.hostile import hostile_events, need_posted, pledge_made
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

TOPIC = {"NeedPosted": "needs.events", "PledgeMade": "volunteers.events"}


def test_hostile_events_never_stop_the_stream(database_url: str) -> None:
    pipeline = Pipeline()
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(_connect(database_url))
    archived = 0

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(hostile_events(), min_size=1, max_size=3))
    def one_draw(hostile: list[tuple[str, object, bytes]]) -> None:
        nonlocal archived
        start = len(pipeline.log)
        for _, env, value in hostile:
            pipeline.feed(
                pipeline.emit(TOPIC[env.event_type], b"k", value, env.event_id, env.event_type)
            )  # type: ignore[attr-defined]
        need, pledge = need_posted(volunteers_needed=1), pledge_made()  # a pair that fits
        for env in (need, pledge):
            pipeline.feed(
                pipeline.emit(
                    TOPIC[env.event_type], b"k", encode(env), env.event_id, env.event_type
                )
            )
        # still matching: the valid need after the hostile events gets a proposal
        proposed = {
            p.need_id
            for r in pipeline.log[start:]
            if r.topic == MATCHES_EVENTS.name
            and isinstance(p := decode(r.value).payload, MatchProposed)
        }
        assert need.payload.need_id in proposed  # type: ignore[attr-defined]
        # still archiving and projecting: one batch with the hostile events and the valid ones
        batch = pipeline.log[start:]
        archived += loop.run_until_complete(archive_batch(conn, batch))
        assert (
            loop.run_until_complete(
                conn.fetchval(
                    "SELECT count(*) FROM rm_needs WHERE need_id = $1",
                    need.payload.need_id,  # type: ignore[attr-defined]
                )
            )
            == 1
        )

    try:
        one_draw()
        assert archived == len(pipeline.log)
        # replay equals live: projections (same set-asides) and every matcher decision
        report = loop.run_until_complete(replay_projections(conn))
        assert report.equal, [str(d) for d in report.shown]
        inputs, logged = kafka_matcher_log(_matcher_log(pipeline.log))
        matcher = replay_matcher(inputs, logged)
        assert matcher.equal, [str(d) for d in matcher.differences]
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


async def _connect(dsn: str) -> asyncpg.Connection:
    conn = await connect(dsn)
    await prepare(conn)
    return conn


def _matcher_log(log: list[Record]) -> list[Record]:
    topics = {MATCHER_INPUTS.name, MATCHES_EVENTS.name, f"{MATCHER_INPUTS.name}.dlq"}
    return [r for r in log if r.topic in topics]
