"""Forgetting a volunteer's, a need's and a donation's free text (docs/privacy.md), end to end on a
real broker and PostgreSQL: the gateway seals, the intake and matcher decide on sealed values,
the ledger archives and projects them; the text reads back in clear through the API and the
reports while the keys exist; `exchange privacy forget` deletes the keys; then the text is
nowhere to be read (archive bytes, every table, the topics, a replay from the topics, the
reports) while `exchange audit verify` and `exchange audit replay` (from the archive and from
the topics) pass.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode
from schemas.messages import OrgKind
from schemas.sealed import FORGOTTEN, Sealed, open_sealed, parse_sealed
from schemas.topics import ALL_TOPICS, all_topic_names
from services.audit.replay.rebuild import fold_records, read_topics
from services.audit.replay.simulate import simulate
from services.cli import parser
from services.domain.intake import IntakeState, decide
from services.embedded.broker import EmbeddedBroker
from services.ledger.service import run_ledger
from services.platform import kafka
from services.platform.kafka import Record, headers_for, producer
from services.settings import Settings
from tests import factories as f
from tests.integration.conftest import org_token, query, wait_until

pytestmark = pytest.mark.integration

PSEUDONYM = "隐私测试员Zq7Pseud"
DESCRIPTION = "独居老人Zq7Descr住五楼，腿脚不便"
DONOR = "捐赠人Zq7Donor"
NOTE = "Zq7Note为母亲祈福"
REASON = "Zq7Reason要照顾家人"
NEEDLES = (PSEUDONYM, "Zq7Pseud", DESCRIPTION, "Zq7Descr", DONOR, "Zq7Donor", NOTE, "Zq7Note",
           REASON, "Zq7Reason")  # fmt: skip
"""What must never be readable once forgotten (ASCII parts too, in case anything escapes the
Chinese characters as \\u sequences)."""


@pytest.fixture
def as_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process gateway stamps its `producer` header as `exchange services run gateway`
    does, so `exchange audit verify` has no foreign writer to report."""
    monkeypatch.setattr(kafka, "_producer", "gateway")


def cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run one `exchange` command in-process, as an operator or auditor would; its exit code
    and what it printed."""
    capsys.readouterr()
    args = parser().parse_args(list(argv))
    code = args.func(settings, args)
    return code, capsys.readouterr().out


async def _scan(dsn: str, needles: tuple[str, ...]) -> list[str]:
    """Every table (and bytea column) of the database holding any needle: each row as text
    (jsonb keeps Chinese as characters), and each bytea column's raw bytes (the archive's
    values, the outbox's posting bytes)."""
    conn = await asyncpg.connect(dsn)
    try:
        hits = []
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'"
        )
        for (table,) in tables:
            for needle in needles:
                if await conn.fetchval(
                    f'SELECT count(*) FROM "{table}" x WHERE x::text LIKE $1', f"%{needle}%"
                ):
                    hits.append(f"{table}: {needle}")
            for (col,) in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = $1 AND data_type = 'bytea'",
                table,
            ):
                for needle in needles:
                    if await conn.fetchval(
                        f'SELECT count(*) FROM "{table}" WHERE position($1::bytea IN "{col}") > 0',
                        needle.encode(),
                    ):
                        hits.append(f"{table}.{col}: {needle}")
        return hits
    finally:
        await conn.close()


def scan(dsn: str, needles: tuple[str, ...] = NEEDLES) -> list[str]:
    return asyncio.run(_scan(dsn, needles))


def decided_by_services(dsn: str) -> tuple[set[uuid.UUID], list[Record]]:
    """The committed postings' ids, and what intake, the router and the matcher write for them
    (each record with its topic and partition)."""

    async def postings() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(
                await conn.fetch(
                    "SELECT posting_id, topic, value FROM postings WHERE org_id <> 'operator'"
                    " ORDER BY accepted_at"
                )
            )
        finally:
            await conn.close()

    states: dict[str, IntakeState] = {}
    decided = []
    ids: set[uuid.UUID] = set()
    for row in asyncio.run(postings()):
        ids.add(row["posting_id"])
        env = decode(bytes(row["value"]))
        decided += decide(states.setdefault(row["topic"], IntakeState()), env)
    return ids, simulate(decided)


def publish(bootstrap: str, records: list[Record]) -> set[uuid.UUID]:
    """Write records to the broker as their topics' writers would; return their event ids."""
    ids = set()
    owner = {t.name: t.owner for t in ALL_TOPICS}
    w = producer(bootstrap)
    for r in records:
        env = decode(r.value)
        headers = headers_for(env.event_id, env.event_type, owner[r.topic])  # as each service
        w.send(r.topic, key=r.key, value=r.value, headers=headers, partition=r.partition)
        ids.add(env.event_id)
    w.flush()
    w.close()
    return ids


def archive_all(settings: Settings, dsn: str, ids: set[uuid.UUID]) -> None:
    """Run the ledger until every one of `ids` is archived, then stop it cleanly (which signs
    a checkpoint)."""

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_ledger(settings, stop))
        conn = await asyncpg.connect(dsn)
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while await conn.fetchval(
                "SELECT count(*) FROM archive WHERE event_id = ANY($1::uuid[])", list(ids)
            ) < len(ids):
                assert not task.done(), "the ledger stopped"
                assert asyncio.get_running_loop().time() < deadline, "not archived in 60 s"
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
            stop.set()
            await task

    asyncio.run(run())


def sealed_values(dsn: str) -> list[Sealed]:
    """Every sealed value in the archive's events (payloads walked as JSON)."""
    found: list[Sealed] = []

    def walk(value: Any) -> None:
        sealed = parse_sealed(value)
        if sealed is not None:
            found.append(sealed)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    async def values() -> list[bytes]:
        conn = await asyncpg.connect(dsn)
        try:
            return [bytes(r[0]) for r in await conn.fetch("SELECT value FROM archive")]
        finally:
            await conn.close()

    for raw in asyncio.run(values()):
        walk(decode(raw).payload.model_dump(mode="json"))
    return found


def test_forgetting_leaves_nothing_readable_and_verify_and_replay_still_pass(
    broker: EmbeddedBroker,
    database_url: str,
    as_gateway: None,
    client: TestClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = database_url
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=dsn,
        var_dir=tmp_path / "var",
        audit_key_path=tmp_path / "ledger-ed25519.pem",
    )
    community = {"Authorization": f"Bearer {org_token(dsn, OrgKind.COMMUNITY, '金陵名人居社区')}"}
    foundation = {
        "Authorization": f"Bearer {org_token(dsn, OrgKind.FOUNDATION, '江东街道慈善基金会')}"
    }
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)

    # Given a volunteer with a distinctive pseudonym, their pledge, and a need whose
    # description describes a beneficiary, posted through the gateway.
    r = client.post(
        "/v1/volunteers",
        json={"pseudonym": PSEUDONYM, "home": {"district": "鼓楼区", "street": "江东街道"}},
        headers=community,
    )
    assert r.status_code == 202, r.text
    volunteer_id, vol_token = r.json()["volunteer_id"], r.json()["volunteer_token"]
    window = {"start": soon.isoformat(), "end": (soon + timedelta(hours=5)).isoformat()}
    r = client.put(
        f"/v1/volunteers/{volunteer_id}/pledge",
        json=f.pledge(pseudonym=PSEUDONYM, availability=[window]),
        headers={"Authorization": f"Bearer {vol_token}"},
    )
    assert r.status_code == 202, r.text
    need = f.volunteer_need(
        description=DESCRIPTION,
        deadline=(soon + timedelta(hours=5)).isoformat(),
        shift={
            "start": (soon + timedelta(hours=1)).isoformat(),
            "end": (soon + timedelta(hours=3)).isoformat(),
        },
    )
    r = client.post("/v1/needs", json=need, headers=community)
    assert r.status_code == 202, r.text
    need_id = r.json()["need_id"]
    # … the volunteer withdraws (after the need is matched), with a reason about their family …
    r = client.post(
        f"/v1/volunteers/{volunteer_id}/pledge/withdraw",
        json={"reason": REASON},
        headers={"Authorization": f"Bearer {vol_token}"},
    )
    assert r.status_code == 202, r.text
    # … and a fund receives a donation from a person, with a note, and one from a registered
    # organisation (its name is public: kept plain, and named in the disclosure report).
    r = client.post("/v1/funds", json=f.fund(), headers=foundation)
    assert r.status_code == 202, r.text
    fund_id = r.json()["fund_id"]
    r = client.post(f"/v1/funds/{fund_id}/donations", json=f.donation(donor=DONOR, note=NOTE),
                    headers=foundation)  # fmt: skip
    assert r.status_code == 202, r.text
    donation_id = r.json()["donation_id"]
    from_org = f.donation(5_000, donor="金陵名人居社区")
    r = client.post(f"/v1/funds/{fund_id}/donations", json=from_org, headers=foundation)
    assert r.status_code == 202, r.text
    wait_until(
        lambda: bool(query(dsn, "SELECT count(*) = 0 FROM postings WHERE published_at IS NULL")),
        30,
        "every posting published",
    )
    assert query(dsn, "SELECT count(*) FROM subject_keys") == 3, (
        "a key per volunteer, need and personal donation (none for the organisation's)"
    )

    # Decided, matched and archived by the real ledger: intake's decisions first, then the
    # matcher's traffic (as on a live exchange, where the router forwards what intake decided).
    postings, records = decided_by_services(dsn)
    intake = [r for r in records if not r.topic.startswith(("matcher.", "matches."))]
    archive_all(settings, dsn, postings | publish(broker.bootstrap, intake))
    rest = [r for r in records if r not in intake]
    archive_all(settings, dsn, publish(broker.bootstrap, rest))
    assert query(dsn, "SELECT count(*) FROM rm_matches WHERE volunteer_id = $1::uuid", volunteer_id)

    # The text never entered the log, the read models or the outbox in plain: only sealed.
    assert scan(dsn) == []
    assert "rm_needs: 银发助餐" in scan(dsn, ("银发助餐",)), "the scan finds plain text (a title)"
    topics = asyncio.run(read_topics(broker.bootstrap, all_topic_names()))
    assert not [n for r in topics for n in NEEDLES if n.encode() in r.value]
    assert len(sealed_values(dsn)) >= 10
    assert query(dsn, "SELECT count(*) FROM archive WHERE event_type = 'PledgeWithdrawn'")

    # While the keys exist, the people allowed to read it read it in clear.
    got = client.get(f"/v1/volunteers/{volunteer_id}", headers=community).json()
    assert got["pseudonym"] == PSEUDONYM and got["spec"]["pseudonym"] == PSEUDONYM
    assert (
        client.get(f"/v1/needs/{need_id}", headers=community).json()["spec"]["description"]
        == DESCRIPTION
    )
    code, trail = cli(settings, capsys, "audit", "trail", "--volunteer", volunteer_id,
                      "--database-url", dsn)  # fmt: skip
    assert code == 0 and PSEUDONYM in trail
    at = (soon + timedelta(days=1)).isoformat()
    code, as_of = cli(settings, capsys, "audit", "as-of", at, "--database-url", dsn)
    assert code == 0 and PSEUDONYM in as_of
    code, trail = cli(settings, capsys, "audit", "trail", "--donation", donation_id,
                      "--database-url", dsn)  # fmt: skip
    assert code == 0 and DONOR in trail and NOTE in trail, trail
    cst = datetime.now(UTC).astimezone(timezone(timedelta(hours=8)))
    quarter = f"{cst.year}Q{(cst.month - 1) // 3 + 1}"

    def disclosed() -> str:
        out = tmp_path / "disclosure"
        code, _ = cli(settings, capsys, "audit", "disclosure", "--fund", fund_id, "--quarter",
                      quarter, "--out", str(out), "--database-url", dsn)  # fmt: skip
        assert code == 0
        return "".join(p.read_text(encoding="utf-8") for p in sorted(out.iterdir()))

    report = disclosed()
    assert "金陵名人居社区" in report and not [n for n in NEEDLES if n in report]

    # When the operator forgets the volunteer and the need.
    code, out = cli(settings, capsys, "privacy", "forget", "--volunteer", volunteer_id,
                    "--by", "test", "--database-url", dsn)  # fmt: skip
    assert code == 0 and f"forgot volunteer:{volunteer_id}: its key is deleted" in out, out
    assert "NOT ERASABLE" not in out
    code, out = cli(settings, capsys, "privacy", "forget", "--need", need_id, "--by", "test",
                    "--database-url", dsn)  # fmt: skip
    assert code == 0 and f"forgot need:{need_id}: its key is deleted" in out, out
    code, out = cli(settings, capsys, "privacy", "forget", "--donation", donation_id, "--by",
                    "test", "--database-url", dsn)  # fmt: skip
    assert code == 0 and f"forgot donation:{donation_id}: its key is deleted" in out, out
    assert "NOT ERASABLE" not in out
    code, out = cli(settings, capsys, "privacy", "status", "--database-url", dsn)
    assert '"forgotten_volunteers": 1' in out and '"forgotten_needs": 1' in out
    assert '"forgotten_donations": 1' in out
    assert '"subject_keys": 0' in out

    # Then nothing readable remains: no key opens any sealed value of the archive …
    assert query(dsn, "SELECT count(*) FROM subject_keys") == 0
    for subject_id in (volunteer_id, need_id):  # nor can a guess be checked against a hash
        assert not query(
            dsn,
            "SELECT count(*) FROM postings WHERE kafka_key = $1 AND request_hash <> 'forgotten'",
            subject_id.encode(),
        )
    assert not query(
        dsn,
        "SELECT count(*) FROM postings WHERE response->>'donation_id' = $1"
        " AND request_hash <> 'forgotten'",
        donation_id,
    )
    assert all(open_sealed(v, None) == FORGOTTEN for v in sealed_values(dsn))
    # … no table and no topic holds the text …
    assert scan(dsn) == []
    topics = asyncio.run(read_topics(broker.bootstrap, all_topic_names()))
    assert not [n for r in topics for n in NEEDLES if n.encode() in r.value]
    # … a replay from the topics rebuilds read models without it …
    assert not [n for n in NEEDLES if n in repr(vars(fold_records(topics)))]
    # … the API and the reports show the marker.
    got = client.get(f"/v1/volunteers/{volunteer_id}", headers=community).json()
    assert got["pseudonym"] == FORGOTTEN and got["spec"]["pseudonym"] == FORGOTTEN
    assert (
        client.get(f"/v1/needs/{need_id}", headers=community).json()["spec"]["description"]
        == FORGOTTEN
    )
    code, trail = cli(settings, capsys, "audit", "trail", "--volunteer", volunteer_id,
                      "--database-url", dsn)  # fmt: skip
    assert code == 0 and FORGOTTEN in trail and not [n for n in NEEDLES if n in trail]
    code, as_of = cli(settings, capsys, "audit", "as-of", at, "--database-url", dsn)
    assert code == 0 and FORGOTTEN in as_of and not [n for n in NEEDLES if n in as_of]
    code, trail = cli(settings, capsys, "audit", "trail", "--donation", donation_id,
                      "--database-url", dsn)  # fmt: skip
    assert code == 0 and trail.count(FORGOTTEN) == 2 and not [n for n in NEEDLES if n in trail]
    report = disclosed()
    assert "金陵名人居社区" in report and not [n for n in NEEDLES if n in report]

    # And the archive still verifies, and replays equal what is live, from both sources.
    code, key = cli(settings, capsys, "audit", "key")  # published by the operator, pinned
    assert code == 0
    public = key.split()[1]
    code, out = cli(settings, capsys, "audit", "verify", "--database-url", dsn,
                    "--public-key", public)  # fmt: skip
    assert code == 0 and "hash chain intact" in out, out
    code, out = cli(settings, capsys, "audit", "replay", "--database-url", dsn)
    assert code == 0, out
    code, out = cli(settings, capsys, "audit", "replay", "--from", "kafka", "--database-url", dsn,
                    "--bootstrap-servers", broker.bootstrap)  # fmt: skip
    assert code == 0, out

    # A forgotten volunteer's new text is refused rather than sealed under a new key.
    r = client.put(
        f"/v1/volunteers/{volunteer_id}/pledge",
        json=f.pledge(pseudonym="新名字", availability=[window]),
        headers={"Authorization": f"Bearer {vol_token}"},
    )
    assert r.status_code == 409, r.text
    # A forgotten volunteer may still withdraw; the reason is sealed under a key never stored.
    r = client.post(
        f"/v1/volunteers/{volunteer_id}/pledge/withdraw",
        json={"reason": REASON},
        headers={"Authorization": f"Bearer {vol_token}"},
    )
    assert r.status_code == 202, r.text
    assert query(dsn, "SELECT count(*) FROM subject_keys") == 0
    assert scan(dsn) == []
