"""An auditor reads one archived event with its inclusion proof under the latest signed
checkpoint; the proof checks against the checkpoint's root, the signature under the pinned
key. Everyone else is refused, an unknown event is 404 and a malformed id a 422 naming it.
The public site answers without sign-in; the auditor's pages turn other visitors away."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.audit.evidence.checkpoint import raw_public_key
from services.audit.evidence.merkle import leaf_hash, verify_inclusion
from services.embedded.broker import EmbeddedBroker
from services.gateway.app import create_app
from services.ledger.checkpoints import Checkpointer
from services.platform.db import connect
from services.platform.kafka import ensure_topics
from services.settings import Settings
from tests.integration.conftest import org_token, query
from tests.integration.test_audit_reports_api import archive_scenario

pytestmark = pytest.mark.integration
KEY = Ed25519PrivateKey.generate()
PINNED = raw_public_key(KEY.public_key()).hex()


@pytest.fixture
def pinned_client(broker: EmbeddedBroker, database_url: str) -> Iterator[TestClient]:
    """The gateway with the exchange's public key pinned (EXCHANGE_AUDIT_PUBLIC_KEY)."""
    ensure_topics(broker.bootstrap)
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=database_url,
        audit_public_key=PINNED,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def sign_everything(database_url: str) -> None:
    async def run() -> None:
        conn = await connect(database_url)
        try:
            checkpointer = await Checkpointer.load(conn, KEY, 1000, 60)
            assert await checkpointer.record(conn) is not None
        finally:
            await conn.close()

    asyncio.run(run())


def test_an_event_and_its_inclusion_proof_for_auditors_only(
    pinned_client: TestClient, database_url: str
) -> None:
    # Given an archived month of one fund, signed
    archive_scenario(database_url)
    late = query(database_url, "SELECT event_id FROM archive ORDER BY archive_seq DESC LIMIT 1")
    sign_everything(database_url)
    client = pinned_client
    auditor = {"Authorization": f"Bearer {org_token(database_url, OrgKind.AUDITOR, '审计所')}"}
    community = {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '社区')}"}
    path = f"/v1/audit/events/{late}"

    # Then only auditors may read it
    assert client.get(path).status_code == 401
    refused = client.get(path, headers=community)
    assert refused.status_code == 403 and "auditor" in refused.json()["detail"]

    # And the auditor gets the event as archived, with a proof that checks out
    ev = client.get(path, headers=auditor)
    assert ev.status_code == 200, ev.text
    found = ev.json()
    assert found["event_id"] == str(late) and found["value"]["event_id"] == str(late)
    inc = found["inclusion"]
    assert inc["root_matches"] is True and inc["signature_valid"] is True
    size = inc["checkpoint"]["tree_size"]
    assert inc["leaf_index"] == size - 1  # the newest event is the tree's last leaf
    leaf = leaf_hash(bytes.fromhex(found["content_hash"]))
    proof = [bytes.fromhex(h) for h in inc["proof"]]
    root = bytes.fromhex(inc["checkpoint"]["root_hash"])
    assert verify_inclusion(inc["leaf_index"], size, leaf, proof, root)
    # (checked here again, independently of the route's own check)

    # An unknown event is 404, a malformed id 422 naming the path parameter
    unknown = client.get("/v1/audit/events/00000000-0000-4000-8000-000000000000", headers=auditor)
    assert unknown.status_code == 404
    bad = client.get("/v1/audit/events/not-an-id", headers=auditor)
    assert bad.status_code == 422
    assert [d["field"] for d in bad.json()["detail"]] == ["path.event_id"]


def test_the_public_site_needs_no_sign_in_and_the_audit_pages_do(
    pinned_client: TestClient, database_url: str
) -> None:
    archive_scenario(database_url)
    client = pinned_client
    front = client.get("/public")
    assert front.status_code == 200
    assert (
        "public" in front.headers["cache-control"] and "max-age" in front.headers["cache-control"]
    )
    assert PINNED in front.text  # the pinned key is the one shown to donors
    assert "王师傅" not in front.text  # the scenario's volunteer
    fund = query(database_url, "SELECT fund_id FROM rm_funds LIMIT 1")
    assert client.get(f"/public/funds/{fund}").status_code == 200
    assert client.get("/public/funds/00000000-0000-4000-8000-000000000000").status_code == 404
    for page in ("/audit", "/audit/trail", "/audit/as-of", "/audit/disclosure", "/audit/replay"):
        signed_out = client.get(page, follow_redirects=False)
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/"
