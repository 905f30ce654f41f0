"""/healthz over real heartbeat rows: singletons must each be up; a worker group is up while
one member is, since the others' partitions move to it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.codec import encode
from schemas.messages import NeedPosted, OrgKind, PostNeed
from schemas.specs import NeedSpec
from services import SERVICES
from services.cli import main
from services.domain.outputs import derived
from services.gateway.health import check
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect_pool
from services.platform.kafka import Record, headers_for
from tests import factories as f
from tests.integration.conftest import org_token, query, wait_until

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
        report = await check(pool, stale_after=10, archive_lag=15, decision_lag=30)
        assert report["ok"] and report["groups"] == {"matcher": True}
        assert not report["services"]["matcher-1"]["ok"], "the dead member is still reported"

        await beat(db, "matcher-2", False, 0)  # the last member is not ready
        assert not (await check(pool, stale_after=10, archive_lag=15, decision_lag=30))["ok"]

        await beat(db, "matcher-7", True, 0)  # a worker started under another name
        assert (await check(pool, stale_after=10, archive_lag=15, decision_lag=30))["ok"]

        await beat(db, "ledger", True, 60)  # a singleton silent: down, whatever the group
        assert not (await check(pool, stale_after=10, archive_lag=15, decision_lag=30))["ok"]
    finally:
        await pool.close()


def record(topic: str, offset: int, env: object) -> Record:
    """A consumed record as the ledger sees it."""
    from schemas.envelope import Envelope

    assert isinstance(env, Envelope)
    return Record(
        topic=topic,
        partition=0,
        offset=offset,
        key=b"k",
        value=encode(env),
        headers=tuple(headers_for(env.event_id, env.event_type)),
    )


async def test_an_archived_but_undecided_posting_turns_health_red_until_it_is_decided(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Kept is not the promise; decided is. A posting archived on its postings topic whose
    decision never comes (a matcher that skipped its input) must show on /healthz, and the
    decision's arrival in the archive must clear it."""
    for name in SERVICES:
        await beat(db, name, True, 0)
    spec = NeedSpec.model_validate(f.volunteer_need(title="送餐"))
    posting = f.envelope(PostNeed(need_id=uuid.uuid4(), need=spec))
    await db.execute(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " request_hash, response, accepted_at) VALUES ($1, 'needs.postings', 'k', $2,"
        " 'PostNeed', 'o', 'h', '{}', now() - interval '2 minutes')",
        posting.event_id,
        encode(posting),
    )
    await prepare(db)
    await archive_batch(db, [record("needs.postings", 0, posting)])
    pool = await connect_pool(database_url, max_size=1)
    try:
        report = await check(pool, stale_after=10, archive_lag=15, decision_lag=30)
        assert report["postings_not_yet_archived"] == 0
        assert report["postings_not_yet_decided"] == 1 and not report["ok"]

        decision = derived(
            posting,
            NeedPosted(need_id=posting.payload.need_id, need=spec),
            label="decided",
            stream_id=f"need:{posting.payload.need_id}",
            stream_seq=1,
        )
        await archive_batch(db, [record("needs.events", 0, decision)])
        report = await check(pool, stale_after=10, archive_lag=15, decision_lag=30)
        assert report["postings_not_yet_decided"] == 0 and report["ok"]
    finally:
        await pool.close()


def test_the_public_health_answer_is_brief_and_auditors_get_the_details(
    client: TestClient, database_url: str
) -> None:
    """Anyone may ask /healthz and /metrics; pids, service names, disk paths and backlogs are
    for auditors (their token) and operators (`exchange status`)."""
    community = {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '社区')}"}
    auditor = {"Authorization": f"Bearer {org_token(database_url, OrgKind.AUDITOR, '审计组')}"}
    wait_until(
        lambda: query(database_url, "SELECT count(*) FROM service_heartbeats") == 1,
        10,
        "the gateway's first heartbeat",
    )
    for headers in ({}, community, {"Authorization": "Bearer not-a-token"}):
        r = client.get("/healthz", headers=headers)
        assert r.status_code == 503  # only the gateway runs here
        assert r.json() == {"ok": False, "reason": "services_not_ready"}, r.json()
        text = client.get("/metrics", headers=headers).text
        assert "exchange_services_not_ready 7" in text, text
        assert "service=" not in text and "gateway" not in text

    detail = client.get("/healthz", headers=auditor).json()
    assert detail["reason"] == "services_not_ready"
    assert detail["services"]["gateway"]["ok"] and detail["services"]["gateway"]["pid"]
    assert not detail["services"]["ledger"]["ok"]
    assert {"disk", "relay_pending", "postings_not_yet_decided"} <= set(detail)
    metrics = client.get("/metrics", headers=auditor).text
    assert 'exchange_service_ready{service="gateway"} 1' in metrics


def test_exchange_status_reads_the_details_from_the_database(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The operator's view does not depend on the public answer: with the gateway gone it
    still says which services beat, from PostgreSQL."""
    run = tmp_path / "var" / "run"
    run.mkdir(parents=True)
    gone = "http://127.0.0.1:9"  # discard port: nothing answers
    (run / "exchange.json").write_text(json.dumps({"http_url": gone, "database_url": database_url}))
    asyncio.run(_beat_everyone(database_url))
    monkeypatch.setenv("EXCHANGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["status"])
    assert done.value.code == 1  # the gateway did not answer
    report = json.loads(capsys.readouterr().out)
    assert report["healthz"]["ok"] is False
    assert report["services"]["ledger"]["ok"] and report["services"]["ledger"]["pid"] == 1
    assert "disk" in report and "postings_unpublished" in report


async def _beat_everyone(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name in SERVICES:
            await beat(conn, name, True, 0)
    finally:
        await conn.close()
