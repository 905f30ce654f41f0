"""Auditors read as-of, trail and disclosure over HTTP, with the answers the hand-computed
scenario knows; every other caller is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from tests.integration.conftest import org_token
from tests.integration.test_audit_reports import COMMUNITY, DON_A, FOUNDATION, FUND, T0, scenario

pytestmark = pytest.mark.integration


def archive_scenario(database_url: str) -> None:
    async def run() -> None:
        conn = await connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO organisations (org_id, kind, name, district) VALUES"
                " ($1, 'foundation', '江东街道慈善基金会', '鼓楼区'),"
                " ($2, 'community', '金陵名人居社区', '鼓楼区')",
                FOUNDATION,
                COMMUNITY,
            )
            await prepare(conn)
            log = scenario()
            assert await archive_batch(conn, log.records()) == len(log.envs)
        finally:
            await conn.close()

    asyncio.run(run())


def test_auditors_read_the_reports_over_http_and_nobody_else_may(
    client: TestClient, database_url: str
) -> None:
    archive_scenario(database_url)
    auditor = {"Authorization": f"Bearer {org_token(database_url, OrgKind.AUDITOR, '审计所')}"}
    community = {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '社区')}"}
    end = (T0 + timedelta(hours=1)).isoformat()
    paths = [
        ("/v1/audit/as-of", {"at": end}),
        ("/v1/audit/trail", {"donation": str(DON_A)}),
        ("/v1/audit/disclosure", {"fund": str(FUND), "quarter": "2026Q4", "format": "csv"}),
    ]
    for path, params in paths:
        assert client.get(path, params=params).status_code == 401
        assert client.get(path, params=params, headers=community).status_code == 403

    state = client.get("/v1/audit/as-of", params={"at": end}, headers=auditor)
    assert state.status_code == 200
    (fund,) = state.json()["funds"]
    assert (fund["available"], fund["reserved"], fund["disbursed"]) == (100_000, 500_000, 300_000)

    steps = client.get("/v1/audit/trail", params={"donation": str(DON_A)}, headers=auditor)
    assert steps.status_code == 200
    kinds = [s["event_type"] for s in steps.json() if s["event_type"].startswith("allocation")]
    assert kinds == ["allocation:disbursed", "allocation:reserved"]
    both = {"donation": str(DON_A), "fund": str(FUND)}
    assert client.get("/v1/audit/trail", params=both, headers=auditor).status_code == 422
    unknown = {"donation": "00000000-0000-4000-8000-000000000000"}
    assert client.get("/v1/audit/trail", params=unknown, headers=auditor).status_code == 404

    csv = client.get("/v1/audit/disclosure", params=paths[2][1], headers=auditor)
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    assert "attachment" in csv.headers["content-disposition"]
    assert "金陵名人居业主委员会" in csv.content.decode("utf-8-sig")
    page = client.get(
        "/v1/audit/disclosure",
        params={"fund": str(FUND), "quarter": "2026Q4"},
        headers=auditor,
    )
    assert page.status_code == 200 and '<meta charset="utf-8">' in page.text
    assert "王师傅" not in page.text, "no volunteer's pseudonym in a public report"
    bad_quarter = {"fund": str(FUND), "quarter": "2026Q5"}
    assert (
        client.get("/v1/audit/disclosure", params=bad_quarter, headers=auditor).status_code == 422
    )
