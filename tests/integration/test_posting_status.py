"""A posting's status is read from one snapshot: never "decided" for a refused posting."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from schemas.envelope import derive_id
from services.gateway.reads import posting
from services.platform.db import connect_pool

pytestmark = pytest.mark.integration


class CommitsBetweenReads:
    """A pool through which the ledger commits a refusal right after the first read answers:
    the moment at which two separate reads once disagreed."""

    def __init__(self, pool: asyncpg.Pool, commit: Any) -> None:
        self.pool = pool
        self.commit = commit
        self.reads = 0

    async def _after(self, result: Any) -> Any:
        self.reads += 1
        if self.reads == 1:
            await self.commit()
        return result

    async def fetchrow(self, *args: Any) -> Any:
        return await self._after(await self.pool.fetchrow(*args))

    async def fetchval(self, *args: Any) -> Any:
        return await self._after(await self.pool.fetchval(*args))


async def test_a_refusal_committed_between_reads_never_shows_as_decided(
    db: asyncpg.Connection, database_url: str
) -> None:
    posting_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " request_hash, response) VALUES ($1, 'needs.postings', 'k', '{}', 'AmendNeed', 'o',"
        " 'h', '{}')",
        posting_id,
    )
    decision = derive_id(posting_id, "decided")

    async def ledger_commits_the_refusal() -> None:
        async with db.transaction():
            await db.execute(
                "INSERT INTO projected_events (event_id, archive_seq) VALUES ($1, 1)", decision
            )
            await db.execute(
                "INSERT INTO rm_refusals (posting_id, reason, field, event_id)"
                " VALUES ($1, 'need is not open', 'need_id', $2)",
                posting_id,
                decision,
            )

    pool = await connect_pool(database_url, max_size=1)
    try:
        seen = await posting(CommitsBetweenReads(pool, ledger_commits_the_refusal), posting_id)  # type: ignore[arg-type]
        assert seen is not None and seen["status"] == "pending"  # the snapshot before the commit
        again = await posting(pool, posting_id)
        assert again is not None and again["status"] == "refused"
        assert again["reason"] == "need is not open"
    finally:
        await pool.close()
