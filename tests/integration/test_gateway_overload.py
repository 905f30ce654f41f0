"""The gateway sheds postings while its relay is overloaded (behind although the broker
answers): 503 with `Retry-After`, the reason named, nothing written; then accepts again."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.embedded.broker import EmbeddedBroker
from tests import factories as f
from tests.integration.conftest import org_token, query

pytestmark = pytest.mark.integration


def test_an_overloaded_relay_refuses_postings_with_retry_after_and_writes_nothing(
    client: TestClient, broker: EmbeddedBroker, database_url: str
) -> None:
    community = {
        "Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '过载社区')}"
    }
    relay = client.app.state.postings.relay  # type: ignore[attr-defined]
    before = query(database_url, "SELECT count(*) FROM postings")
    relay.overloaded = lambda: True  # as `Relay.overloaded` says while it falls behind
    try:
        r = client.post("/v1/needs", json=f.volunteer_need(), headers=community)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.json()["reason"] == "overloaded"
        assert query(database_url, "SELECT count(*) FROM postings") == before
        # shed before the body is validated: a refusal costs less than an acceptance
        junk = client.post("/v1/needs", json={"title": 1}, headers=community)
        assert junk.status_code == 503 and junk.json()["reason"] == "overloaded"
        metrics = client.get("/metrics").text
        assert "exchange_postings_refused_overloaded_total 2" in metrics
        assert "exchange_relay_behind_seconds" in metrics
    finally:
        del relay.overloaded
    again = client.post("/v1/needs", json=f.volunteer_need(), headers=community)
    assert again.status_code == 202, again.text
    assert query(database_url, "SELECT count(*) FROM postings") == before + 1
