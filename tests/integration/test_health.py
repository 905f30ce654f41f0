"""/healthz over real heartbeat rows: singletons must each be up; a worker group is up while
one member is, since the others' partitions move to it."""

from __future__ import annotations

import asyncpg
import pytest

from services import SERVICES
from services.gateway.health import check
from services.platform.db import connect_pool

pytestmark = pytest.mark.integration


async def beat(db: asyncpg.Connection, service: str, ready: bool, seconds_ago: float) -> None:
    await db.execute(
        "INSERT INTO service_heartbeats (service, pid, started_at, beat_at, ready, details)"
        " VALUES ($1, 1, now(), now() - make_interval(secs => $3), $2, '{}')"
        " ON CONFLICT (service) DO UPDATE SET ready = $2,"
        " beat_at = now() - make_interval(secs => $3)",
        service,
        ready,
        seconds_ago,
    )


async def test_one_live_worker_keeps_the_matcher_group_up(
    db: asyncpg.Connection, database_url: str
) -> None:
    for name in SERVICES:
        await beat(db, name, True, 0)
    await beat(db, "matcher-1", True, 120)  # killed long ago
    pool = await connect_pool(database_url, max_size=1)
    try:
        report = await check(pool, stale_after=10, archive_lag=15)
        assert report["ok"] and report["groups"] == {"matcher": True}
        assert not report["services"]["matcher-1"]["ok"], "the dead member is still reported"

        await beat(db, "matcher-2", False, 0)  # the last member is not ready
        assert not (await check(pool, stale_after=10, archive_lag=15))["ok"]

        await beat(db, "matcher-7", True, 0)  # a worker started under another name
        assert (await check(pool, stale_after=10, archive_lag=15))["ok"]

        await beat(db, "ledger", True, 60)  # a singleton silent: down, whatever the group
        assert not (await check(pool, stale_after=10, archive_lag=15))["ok"]
    finally:
        await pool.close()
