"""Re-issuing and revoking bearer tokens: a volunteer's by the organisation that registered
them (HTTP), an organisation's by the operator (`exchange orgs rotate-token|revoke`). An old
token stops working at once, even one the gateway has cached."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.cli import main
from tests.integration.conftest import org_token, query, wait_until

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_registering_organisation_rotates_a_volunteers_token(
    client: TestClient, database_url: str
) -> None:
    community = bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))
    other = bearer(org_token(database_url, OrgKind.COMMUNITY, "宁海路社区"))
    r = client.post(
        "/v1/volunteers",
        json={"pseudonym": "赵大姐", "home": {"district": "鼓楼区"}},
        headers=community,
    )
    volunteer_id, old = r.json()["volunteer_id"], r.json()["volunteer_token"]
    # the old token works (and is now in the gateway's cache)
    assert client.get("/v1/matches", headers=bearer(old)).status_code == 200

    rotated = client.post(f"/v1/volunteers/{volunteer_id}/token", headers=community)

    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new = rotated.json()["volunteer_token"]
    assert new != old and rotated.json()["volunteer_id"] == volunteer_id
    assert client.get("/v1/matches", headers=bearer(old)).status_code == 401
    assert client.get("/v1/matches", headers=bearer(new)).status_code == 200
    # the volunteer acts with it as themselves
    me = client.get(f"/v1/volunteers/{volunteer_id}", headers=bearer(new))
    assert me.status_code in (200, 404)  # 404 until the registration is archived
    # nobody else may rotate it, not even the volunteer; an unknown volunteer is 404
    assert client.post(f"/v1/volunteers/{volunteer_id}/token", headers=other).status_code == 403
    mine = client.post(f"/v1/volunteers/{volunteer_id}/token", headers=bearer(new))
    assert mine.status_code == 403
    assert client.post(f"/v1/volunteers/{uuid.uuid4()}/token", headers=community).status_code == 404
    assert client.get("/v1/matches", headers=bearer(new)).status_code == 200
    # and who re-issued whose token is on record (the token itself is not)
    actor = query(
        database_url,
        "SELECT actor FROM token_events WHERE principal_id = $1 AND action = 'rotated'",
        uuid.UUID(volunteer_id),
    )
    community_id = query(
        database_url, "SELECT org_id::text FROM organisations WHERE name = '江东社区'"
    )
    assert actor == community_id


def test_the_operator_rotates_and_revokes_an_organisations_token(
    client: TestClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    old = org_token(database_url, OrgKind.FOUNDATION, "江东街道慈善基金会")
    assert client.get("/v1/funds", headers=bearer(old)).status_code == 200  # cached now

    with pytest.raises(SystemExit) as done:
        main(["orgs", "rotate-token", "江东街道慈善基金会"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    new = printed.split("keep it secret): ")[1].strip()
    assert new.startswith("cx_") and printed.count(new) == 1

    # The gateway hears of it (NOTIFY) at commit; the deadline only absorbs that delivery
    took = wait_until(
        lambda: client.get("/v1/funds", headers=bearer(old)).status_code == 401,
        1.0,
        "the old token is refused",
    )
    assert took < 1.0
    assert client.get("/v1/funds", headers=bearer(new)).status_code == 200

    org_id = query(database_url, "SELECT org_id::text FROM organisations LIMIT 1")
    with pytest.raises(SystemExit) as done:
        main(["orgs", "revoke", org_id])
    assert done.value.code == 0
    assert "1 token(s) stopped working" in capsys.readouterr().out
    wait_until(
        lambda: client.get("/v1/funds", headers=bearer(new)).status_code == 401,
        1.0,
        "the revoked token is refused",
    )
    assert query(database_url, "SELECT count(*) FROM token_events WHERE actor = 'operator'") == 2
    # an unknown name is refused without touching anything
    with pytest.raises(SystemExit) as done:
        main(["orgs", "revoke", "没有这个组织"])
    assert done.value.code == 2
