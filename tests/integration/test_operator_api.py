"""The exchange's operator over HTTP (#16): registers an organisation once, suspends and
reinstates it, re-issues and revokes its token; each act holds at once and is an event on
organisations.events naming the operator, and only an operator may do any of it."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.cli import main
from services.identity import create_operator
from services.platform.db import connect
from tests import factories as f
from tests.integration.conftest import org_token, query, wait_until

pytestmark = pytest.mark.integration

FOUNDATION = {"kind": "foundation", "name": "江东街道慈善基金会", "district": "鼓楼区"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operator_token(dsn: str, name: str = "运营-王芳") -> tuple[str, str]:
    """Given an operator made by the command line's code path: (its id, its token)."""

    async def make() -> tuple[str, str]:
        conn = await connect(dsn)
        try:
            operator_id, token = await create_operator(conn, name)
            return str(operator_id), token
        finally:
            await conn.close()

    return asyncio.run(make())


def outbox(dsn: str, org_id: str) -> list[dict[str, Any]]:
    """The organisation's stream as the outbox holds it, in order: envelopes."""

    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(
                await conn.fetch(
                    "SELECT value FROM postings WHERE topic = 'organisations.events'"
                    " AND kafka_key = $1 ORDER BY seq",
                    org_id.encode(),
                )
            )
        finally:
            await conn.close()

    return [json.loads(r["value"]) for r in asyncio.run(rows())]


OK = (200, 202)
SUSPENDED = (403, 403)
REVOKED = (401, 401)


def acts(client: TestClient, token: str) -> tuple[int, int]:
    """What a foundation's token gets on a read and on a write."""
    read = client.get("/v1/funds", headers=bearer(token)).status_code
    write = client.post("/v1/funds", json=f.fund(), headers=bearer(token)).status_code
    return read, write


def test_the_operator_registers_suspends_reinstates_rotates_and_revokes(
    client: TestClient, database_url: str
) -> None:
    # Given an operator, and a community that is no operator
    operator_id, op = operator_token(database_url)
    community = org_token(database_url, OrgKind.COMMUNITY, "江东社区")

    # When the operator registers a foundation over HTTP
    r = client.post("/v1/orgs", json=FOUNDATION, headers=bearer(op))
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    org_id, token = r.json()["org_id"], r.json()["token"]
    assert acts(client, token) == OK

    # Then the same name again (or one that reads the same) is refused, naming `name`
    for name in ("江东街道慈善基金会", "江东街道 慈善基金会。"):
        again = client.post("/v1/orgs", json={**FOUNDATION, "name": name}, headers=bearer(op))
        assert again.status_code == 409, again.text
        assert again.json()["detail"][0]["field"] == "name"
        assert again.json()["existing_org_id"] == org_id
    assert query(database_url, "SELECT count(*) FROM organisations WHERE kind = 'foundation'") == 1

    # and bad input is 422 naming the field
    bad = client.post("/v1/orgs", json={**FOUNDATION, "kind": "bank"}, headers=bearer(op))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "kind"

    # and nobody but an operator may do any of it (403 before the body is read)
    for method, path in [
        ("POST", "/v1/orgs"),
        ("GET", "/v1/orgs"),
        ("POST", f"/v1/orgs/{org_id}/suspend"),
        ("POST", f"/v1/orgs/{org_id}/reinstate"),
        ("POST", f"/v1/orgs/{org_id}/tokens"),
        ("DELETE", f"/v1/orgs/{org_id}/tokens"),
    ]:
        for who in (community, token):
            refused = client.request(method, path, json={}, headers=bearer(who))
            assert refused.status_code == 403, (method, path, refused.text)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.post(f"/v1/orgs/{unknown}/suspend", headers=bearer(op)).status_code == 404

    # When the operator suspends it, its token is refused at once, with the reason
    r = client.post(f"/v1/orgs/{org_id}/suspend", headers=bearer(op))
    assert r.status_code == 200 and r.json()["changed"] is True
    assert acts(client, token) == SUSPENDED
    assert "suspended" in client.get("/v1/funds", headers=bearer(token)).json()["detail"]
    assert client.post(f"/v1/orgs/{org_id}/suspend", headers=bearer(op)).json()["changed"] is False
    listed = {o["org_id"]: o for o in client.get("/v1/orgs", headers=bearer(op)).json()}
    assert listed[org_id]["status"] == "suspended"

    # When reinstated, the same token works again
    assert client.post(f"/v1/orgs/{org_id}/reinstate", headers=bearer(op)).status_code == 200
    assert acts(client, token) == OK

    # When its token is rotated, the old one is refused and the new one works
    r = client.post(f"/v1/orgs/{org_id}/tokens", headers=bearer(op))
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    new = r.json()["token"]
    assert acts(client, token) == REVOKED
    assert acts(client, new) == OK

    # When its tokens are revoked, none works, and the list says so
    r = client.delete(f"/v1/orgs/{org_id}/tokens", headers=bearer(op))
    assert r.status_code == 200 and r.json()["tokens_revoked"] == 1
    assert acts(client, new) == REVOKED
    listed = {o["org_id"]: o for o in client.get("/v1/orgs", headers=bearer(op)).json()}
    assert listed[org_id]["status"] == "no token"

    # Then every act is on the organisation's stream, numbered densely, naming the operator,
    # and no token (nor its hash) is in any of them
    stream = outbox(database_url, org_id)
    assert [e["event_type"] for e in stream] == [
        "OrganisationRegistered",
        "OrganisationSuspended",
        "OrganisationReinstated",
        "OrganisationTokenRotated",
        "OrganisationTokensRevoked",
    ]
    assert [e["stream_seq"] for e in stream] == [1, 2, 3, 4, 5]
    assert {(e["actor"]["org_id"], e["actor"]["role"]) for e in stream} == {(operator_id, "system")}
    assert not re.search(r"cx_|[0-9a-f]{64}", json.dumps(stream))
    # and the relay publishes them to organisations.events
    wait_until(
        lambda: query(
            database_url,
            "SELECT count(*) = 0 FROM postings WHERE topic = 'organisations.events'"
            " AND published_at IS NULL",
        ),
        within=20,
        what="the operator's events published",
    )


def test_a_suspended_organisations_web_session_is_refused_at_once(
    client: TestClient, database_url: str
) -> None:
    # Given a foundation signed in to the web app
    _, op = operator_token(database_url)
    r = client.post("/v1/orgs", json=FOUNDATION, headers=bearer(op))
    org_id, token = r.json()["org_id"], r.json()["token"]
    pre = client.get("/").cookies.get("cx_pre")
    signed_in = client.post("/signin", data={"pre": pre, "token": token}, follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    assert client.get("/home").status_code == 200

    # When the operator suspends it, its next page is refused with the reason
    client.post(f"/v1/orgs/{org_id}/suspend", headers=bearer(op))
    page = client.get("/home")
    assert page.status_code == 403 and "suspended" in page.text

    # and reinstating lets the same session back in
    client.post(f"/v1/orgs/{org_id}/reinstate", headers=bearer(op))
    assert client.get("/home").status_code == 200


def test_open_event_streams_end_when_their_token_is_cut_off(
    client: TestClient, database_url: str
) -> None:
    # Given two foundations, each with an event stream open
    _, op = operator_token(database_url)
    opened = [
        client.post("/v1/orgs", json={**FOUNDATION, "name": name}, headers=bearer(op)).json()
        for name in ("秦淮慈善基金会", "玄武慈善基金会")
    ]
    for org, cut in zip(opened, ("suspend", "revoke"), strict=True):
        with client.stream("GET", "/v1/events", headers=bearer(org["token"])) as stream:
            lines = stream.iter_lines()
            assert ": connected" in [next(lines), next(lines)]
            # When the operator suspends the one, and revokes the other's token
            if cut == "suspend":
                client.post(f"/v1/orgs/{org['org_id']}/suspend", headers=bearer(op))
            else:
                client.delete(f"/v1/orgs/{org['org_id']}/tokens", headers=bearer(op))
            # Then its open stream says so and ends (the next keep-alive would be 15 s away)
            seen = list(lines)
            assert "event: refused" in seen, (cut, seen)
            assert '"reason": "token_refused"' in seen[seen.index("event: refused") + 1]


def test_the_command_line_suspends_through_the_same_code_and_the_log_says_so(
    client: TestClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a foundation registered over HTTP
    monkeypatch.setenv("DATABASE_URL", database_url)
    _, op = operator_token(database_url)
    r = client.post("/v1/orgs", json=FOUNDATION, headers=bearer(op))
    org_id, token = r.json()["org_id"], r.json()["token"]

    # When the command line suspends it, then reinstates it
    for action, seen in (("suspend", SUSPENDED), ("reinstate", OK)):
        with pytest.raises(SystemExit) as done:
            main(["orgs", action, FOUNDATION["name"]])
        assert done.value.code in (0, None), capsys.readouterr().err
        # Then the gateway refuses (or serves) it at once: another process's act reaches the
        # gateway by NOTIFY at commit; the deadline only absorbs that delivery
        wait_until(lambda seen=seen: acts(client, token) == seen, 1.0, f"{action} heard")

    # and the log numbers the acts on the same stream, naming the command line
    stream = outbox(database_url, org_id)
    assert [(e["event_type"], e["stream_seq"], e["actor"]["org_id"]) for e in stream[1:]] == [
        ("OrganisationSuspended", 2, "operator"),
        ("OrganisationReinstated", 3, "operator"),
    ]
    assert "suspended" in capsys.readouterr().out

    # When the operator's own token is rotated by the command line, the old one is refused
    with pytest.raises(SystemExit) as done:
        main(["operators", "rotate-token", "运营-王芳"])
    assert done.value.code in (0, None), capsys.readouterr().err
    new = re.search(r"(cx_\S+)", capsys.readouterr().out)
    assert new is not None
    wait_until(
        lambda: client.get("/v1/orgs", headers=bearer(op)).status_code == 401, 1.0, "old refused"
    )
    assert client.get("/v1/orgs", headers=bearer(new.group(1))).status_code == 200
