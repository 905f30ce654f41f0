"""Auditors read the invariant report over HTTP; nobody else may."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.platform.db import connect
from tests.integration.conftest import org_token
from tests.integration.test_audit_replay import archive_city, forge_overspend

pytestmark = pytest.mark.integration


def test_auditors_get_the_invariant_report_and_others_are_refused(
    client: TestClient, database_url: str
) -> None:
    async def given(forge: bool) -> uuid.UUID | None:
        conn = await connect(database_url)
        try:
            if not forge:
                await archive_city(conn)
                return None
            return (await forge_overspend(conn))[0]
        finally:
            await conn.close()

    asyncio.run(given(forge=False))
    auditor = {"Authorization": f"Bearer {org_token(database_url, OrgKind.AUDITOR, '审计所')}"}
    community = {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '社区')}"}

    assert client.get("/v1/audit/invariants", headers=community).status_code == 403
    assert client.get("/v1/audit/invariants").status_code == 401
    clean = client.get("/v1/audit/invariants", headers=auditor)
    assert clean.status_code == 200
    assert clean.json()["ok"] is True and clean.json()["events_checked"] > 100

    forged = asyncio.run(given(forge=True))
    report = client.get("/v1/audit/invariants", headers=auditor).json()

    assert report["ok"] is False
    assert report["events_checked"] == clean.json()["events_checked"] + 1  # only the new row
    assert {v["kind"] for v in report["violations"]} == {"over-spent", "over-filled"}
    assert all(v["events"][-1] == str(forged) for v in report["violations"])
