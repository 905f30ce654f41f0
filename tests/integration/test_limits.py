"""What one caller may ask of the gateway: request budgets (429 with Retry-After), body size
(413 before reading more), open event streams (429), and `min_seq` far ahead of the log (409
at once, not a 10 s hold)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.codec import encode
from schemas.messages import NeedPosted, OrgKind
from schemas.specs import NeedSpec
from services.embedded.broker import EmbeddedBroker
from services.gateway.app import create_app
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from services.platform.kafka import Record, ensure_topics, headers_for
from services.settings import Settings
from tests import factories as f
from tests.integration.conftest import org_token, query

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def gateway(broker: EmbeddedBroker, dsn: str, **settings: Any) -> Iterator[TestClient]:
    """The gateway in-process with some settings of the test's own."""
    ensure_topics(broker.bootstrap)
    with TestClient(
        create_app(Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=dsn, **settings))
    ) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(r: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["reason"] == reason and body["detail"], body
    return body


def written(dsn: str) -> int:
    return int(query(dsn, "SELECT count(*) FROM postings WHERE org_id <> 'operator'"))


def test_each_token_has_a_budget_for_writes_and_another_for_reads(
    broker: EmbeddedBroker, database_url: str
) -> None:
    community = bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))
    other = bearer(org_token(database_url, OrgKind.COMMUNITY, "永盛社区"))
    slow = {"rate_writes_burst": 3, "rate_writes_per_second": 0.01}
    with gateway(broker, database_url, rate_reads_burst=4, rate_reads_per_second=0.01, **slow) as c:
        for _ in range(3):
            assert (
                c.post("/v1/needs", json=f.volunteer_need(), headers=community).status_code == 202
            )
        r = c.post("/v1/needs", json=f.volunteer_need(), headers=community)
        refused(r, 429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= 100  # one token at 0.01/s
        assert written(database_url) == 3, "a refused write writes nothing"
        # reads are counted apart: the writes spent none of them
        for _ in range(4):
            assert c.get("/v1/needs", headers=community).status_code == 200
        refused(c.get("/v1/needs", headers=community), 429, "rate_limited")
        # and budgets are per token: another organisation is not slowed by this one
        assert c.post("/v1/needs", json=f.volunteer_need(), headers=other).status_code == 202


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(
    broker: EmbeddedBroker, database_url: str
) -> None:
    community = bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))
    with gateway(broker, database_url, max_body_bytes=4096) as c:
        big = b'{"title": "' + b"x" * 5000 + b'"}'
        declared = c.post(
            "/v1/needs", content=big, headers={**community, "Content-Type": "application/json"}
        )
        refused(declared, 413, "body_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield big[:3000]
            yield big[3000:]

        streamed = c.post(
            "/v1/needs", content=chunks(), headers={**community, "Content-Type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        refused(streamed, 413, "body_too_large")
        assert written(database_url) == 0
        # a posting of ordinary size goes through
        assert c.post("/v1/needs", json=f.volunteer_need(), headers=community).status_code == 202


def test_a_token_holds_at_most_its_share_of_event_streams(
    broker: EmbeddedBroker, database_url: str
) -> None:
    community = bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))
    other = bearer(org_token(database_url, OrgKind.COMMUNITY, "永盛社区"))
    with (
        gateway(broker, database_url, max_streams_per_token=2) as c,
        contextlib.ExitStack() as open_,
    ):
        streams = [open_.enter_context(c.stream("GET", "/v1/events", headers=community))]
        streams.append(open_.enter_context(c.stream("GET", "/v1/events", headers=community)))
        assert [s.status_code for s in streams] == [200, 200]
        with c.stream("GET", "/v1/events", headers=community) as third:
            assert third.status_code == 429, "a third stream is refused, not held open"
            third.read()
            refused(third, 429, "too_many_streams")
            assert third.headers["Retry-After"]
        with c.stream("GET", "/v1/events", headers=other) as theirs:
            assert theirs.status_code == 200, "another token has its own streams"
        # closing one stream gives its slot back at once
        streams[0].close()
        with c.stream("GET", "/v1/events", headers=community) as again:
            assert again.status_code == 200


def archive_one_need(dsn: str) -> None:
    """The ledger archives one event (so the head moves by one)."""
    spec = NeedSpec.model_validate(f.volunteer_need())
    env = f.envelope(NeedPosted(need_id=uuid.uuid4(), need=spec))

    async def go() -> None:
        conn = await connect(dsn)
        try:
            await prepare(conn)
            record = Record(
                topic="needs.events",
                partition=0,
                offset=0,
                key=b"k",
                value=encode(env),
                headers=tuple(headers_for(env.event_id, env.event_type)),
            )
            await archive_batch(conn, [record])
        finally:
            await conn.close()

    asyncio.run(go())


def test_min_seq_far_ahead_is_answered_at_once_and_near_still_waits(
    client: TestClient, database_url: str
) -> None:
    community = bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))
    head = int(client.get("/v1/needs", headers=community).headers["X-Exchange-Seq"])
    for path in ("/v1/needs", "/v1/funds", f"/v1/needs/{uuid.uuid4()}"):
        started = time.monotonic()
        r = client.get(path, params={"min_seq": head + 1_000_000}, headers=community)
        assert time.monotonic() - started < 3, "answered at once, not after the wait"
        body = refused(r, 409, "min_seq_ahead")
        assert "ahead of the log" in body["detail"]
        assert r.headers["X-Exchange-Seq"] == str(head)
    # a sequence just ahead (a write not yet archived) is still waited for: read-your-writes
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.get, "/v1/needs", params={"min_seq": head + 1}, headers=community
        )
        archive_one_need(database_url)
        r = waiting.result(timeout=15)
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Exchange-Seq"]) >= head + 1
