"""The outbox's group commit against real PostgreSQL: many requests share one transaction, and
none of them hears "accepted" before that transaction has committed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.gateway.outbox import IdempotencyConflict, OutboxRow, OutboxWriter, Ownership
from services.platform.db import connect, connect_pool

pytestmark = pytest.mark.integration

ORG = uuid.uuid4()


def row(
    idempotency_key: str | None = None,
    request_hash: str = "h",
    fingerprint: str | None = None,
    also: Any = None,
) -> OutboxRow:
    posting_id, need_id = uuid.uuid4(), uuid.uuid4()
    return OutboxRow(
        posting_id=posting_id,
        topic="needs.postings",
        kafka_key=str(need_id).encode(),
        value=b"{}",
        event_type="PostNeed",
        org_id=str(ORG),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        response={"posting_id": str(posting_id), "need_id": str(need_id)},
        fingerprint=fingerprint,
        owns=(Ownership("need", need_id, ORG),),
        also=also,
    )


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[OutboxWriter]:
    pool = await connect_pool(database_url, max_size=4)
    w = OutboxWriter(pool, writers=2)
    w.start()
    yield w
    await w.stop()
    await pool.close()


async def stored(conn: asyncpg.Connection, r: OutboxRow) -> bool:
    return bool(
        await conn.fetchval("SELECT count(*) FROM postings WHERE posting_id = $1", r.posting_id)
    )


async def test_no_request_is_answered_before_its_batch_commits(
    writer: OutboxWriter, database_url: str
) -> None:
    # Given a transaction elsewhere that holds the ownership table, so a batch can insert its
    # postings but cannot finish
    blocker = await connect(database_url)
    observer = await connect(database_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE ownership IN ACCESS EXCLUSIVE MODE")
    rows = [row() for _ in range(20)]
    seen_at_answer: list[bool] = []
    one_at_a_time = asyncio.Lock()  # the observer is one connection

    async def post(r: OutboxRow) -> None:
        await writer.write(r)
        async with one_at_a_time:
            seen_at_answer.append(await stored(observer, r))

    # When twenty requests arrive
    tasks = [asyncio.create_task(post(r)) for r in rows]
    await asyncio.sleep(0.5)
    # Then none is answered while their rows are not committed, and nobody else sees them
    assert not any(t.done() for t in tasks)
    assert await observer.fetchval("SELECT count(*) FROM postings") == 0
    # And once the commit can happen, each answer comes with its row already visible to others
    await tx.rollback()
    await asyncio.gather(*tasks)
    assert seen_at_answer == [True] * 20
    assert writer.batches_written < 20  # they shared transactions
    assert await observer.fetchval("SELECT count(*) FROM ownership") == 20
    await blocker.close()
    await observer.close()


async def test_a_row_that_fails_fails_only_its_own_request(
    writer: OutboxWriter, database_url: str
) -> None:
    async def broken(conn: asyncpg.Connection) -> None:
        raise RuntimeError("this registration cannot be written")

    good = [row() for _ in range(10)]
    bad = row(also=broken)
    results = await asyncio.gather(
        *(writer.write(r) for r in [*good[:5], bad, *good[5:]]), return_exceptions=True
    )
    assert isinstance(results[5], RuntimeError)
    assert all(not isinstance(r, Exception) for i, r in enumerate(results) if i != 5)
    conn = await connect(database_url)
    assert [await stored(conn, r) for r in good] == [True] * 10
    assert not await stored(conn, bad)
    await conn.close()


async def test_concurrent_retries_get_one_answer_and_write_one_row(
    writer: OutboxWriter, database_url: str
) -> None:
    # either may be written first (they are concurrent); the other gets its stored answer
    answers = await asyncio.gather(*(writer.write(row("need-1")) for _ in range(3)))
    assert sorted(a.replayed for a in answers) == [False, True, True]
    assert len({a.response["posting_id"] for a in answers}) == 1
    conn = await connect(database_url)
    assert await conn.fetchval("SELECT count(*) FROM postings") == 1
    await conn.close()


async def test_a_reused_key_with_another_body_is_refused_in_the_same_batch(
    writer: OutboxWriter,
) -> None:
    results = await asyncio.gather(
        writer.write(row("need-2", "h1")),
        writer.write(row("need-2", "h2")),
        return_exceptions=True,
    )
    # whichever was written first stands; the other is refused
    assert sorted(type(r).__name__ for r in results) == ["IdempotencyConflict", "Written"]
    assert any(isinstance(r, IdempotencyConflict) for r in results)


async def test_near_duplicates_are_flagged_within_and_across_batches(
    writer: OutboxWriter,
) -> None:
    one, two = row(fingerprint="same"), row(fingerprint="same")
    a, b = await asyncio.gather(writer.write(one), writer.write(two))
    assert "warnings" not in a.response
    assert b.response["warnings"][0]["need_ids"] == [one.response["need_id"]]
    three = row(fingerprint="same")
    c = await writer.write(three)
    assert c.response["warnings"][0]["need_ids"] == [
        two.response["need_id"],
        one.response["need_id"],
    ]


async def test_stopping_writes_what_was_handed_over(database_url: str) -> None:
    pool = await connect_pool(database_url, max_size=4)
    w = OutboxWriter(pool, writers=2)
    w.start()
    rows = [row() for _ in range(30)]
    tasks = [asyncio.create_task(w.write(r)) for r in rows]
    await asyncio.sleep(0)  # every request has handed its row over
    await w.stop()
    answers = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert all(not a.replayed for a in answers)
    conn = await connect(database_url)
    assert await conn.fetchval("SELECT count(*) FROM postings") == 30
    await conn.close()
    await pool.close()
