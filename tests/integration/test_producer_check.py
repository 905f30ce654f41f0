"""The issue's case: a DonationReceived produced straight onto funds.events, not by
intake-donations. Kafka does not tell the ledger who produced it; the `producer` header does
(or its absence), and the ledger records the mismatch, which `exchange audit verify` reports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import encode
from schemas.messages import DonationReceived, FundOpened, Message
from schemas.specs import DonationSpec, FundSpec
from services.audit.evidence.checkpoint import raw_public_key
from services.audit.evidence.keys import load_key
from services.domain.intake import stream_of
from services.embedded.broker import EmbeddedBroker
from services.ledger import provenance
from services.ledger.service import run_ledger
from services.platform.kafka import ensure_topics, headers_for, producer
from services.settings import Settings
from tests import factories as f
from tests.integration.test_ledger import wait_until

pytestmark = pytest.mark.integration


def send(bootstrap: str, payload: Message, who: str | None) -> uuid.UUID:
    """Produce onto funds.events claiming `who` as producer (None: no header at all)."""
    env = f.envelope(payload, stream=stream_of(payload))
    w = producer(bootstrap)
    w.send(
        "funds.events",
        key=str(payload.fund_id).encode(),  # type: ignore[attr-defined]
        value=encode(env),
        headers=[h for h in headers_for(env.event_id, env.event_type) if h[0] != "producer"]
        + ([("producer", who.encode())] if who else []),
    )
    w.flush()
    w.close()
    return env.event_id


async def test_an_event_not_from_the_topics_writer_is_flagged_and_verify_reports_it(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap)
    fund_id = uuid.uuid4()

    def donation() -> DonationReceived:
        spec = DonationSpec.model_validate(f.donation(10_000))
        return DonationReceived(fund_id=fund_id, donation_id=uuid.uuid4(), donation=spec)

    fund = FundOpened(fund_id=fund_id, fund=FundSpec.model_validate(f.fund()))
    honest = send(broker.bootstrap, fund, "intake-donations")
    also_honest = send(broker.bootstrap, donation(), "intake-donations")
    anonymous = send(broker.bootstrap, donation(), None)
    impostor = send(broker.bootstrap, donation(), "gateway")

    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, "SELECT count(*) FROM archive WHERE topic = 'funds.events'", 4)
    stop.set()
    await task

    rows = await db.fetch(
        "SELECT event_id, claimed, expected, reason FROM producer_flags ORDER BY archive_seq"
    )
    assert {r["event_id"]: r["claimed"] for r in rows} == {anonymous: None, impostor: "gateway"}
    assert all(r["expected"] == "intake-donations" for r in rows)
    assert honest not in {r["event_id"] for r in rows}
    assert also_honest not in {r["event_id"] for r in rows}
    # the archived headers (covered by the hash chain) say the same, without the table
    await db.execute("DELETE FROM producer_flags")
    assert [e for _, e, _, _ in await provenance.rescan(db)] == [anonymous, impostor]

    env = {**os.environ, "EXCHANGE_AUDIT_KEY_PATH": str(tmp_path / "keys" / "ledger-ed25519.pem")}
    public = load_key(tmp_path / "keys" / "ledger-ed25519.pem").public_key()
    pinned = raw_public_key(public).hex()  # as `exchange audit key` publishes it
    verify = await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, "-m", "services.cli", "audit", "verify"),
            *("--public-key", pinned, "--database-url", database_url),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert "archive verified" in verify.stdout
    assert f"event {impostor}, topic funds.events: producer 'gateway'" in verify.stdout
