"""The auditor's replay rebuilds the read models and the matcher's decisions from the log and
finds whatever was changed behind the ledger's back; the invariant checker finds forged
proposals in the archive."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import decode, encode
from schemas.common import Money
from schemas.messages import MatchProposed, SupplyKind
from services.audit.entrypoints.replay_cli import _replay
from services.audit.replay.rebuild import (
    archived_matcher_log,
    check_archive,
    fold_archive,
    replay_matcher,
    replay_projections,
)
from services.audit.replay.simulate import simulate
from services.demo.city import generate
from services.embedded.broker import EmbeddedBroker
from services.ledger.archive import archive_batch, prepare
from services.ledger.service import run_ledger
from services.platform.kafka import Record, ensure_topics, headers_for, producer
from services.settings import Settings
from tests.integration.test_ledger import EVENTS_ARCHIVED, wait_until

pytestmark = pytest.mark.integration


async def archive_city(db: asyncpg.Connection, seed: int = 3) -> list[Record]:
    """Given a generated city's week decided by the router and matcher, archived by the
    ledger's own write path in batches, as it reads them."""
    sc = generate(needs=120, volunteers=60, funds=8, seed=seed)
    records = simulate(sc.events)
    await prepare(db)
    for i in range(0, len(records), 97):
        await archive_batch(db, records[i : i + 97])
    return records


async def forge_overspend(db: asyncpg.Connection) -> tuple[uuid.UUID, MatchProposed]:
    """Archive a proposal nobody decided, paying a whole fund's donations (and more) to one
    need; return its id and payload."""
    real = await db.fetchrow(
        "SELECT a.value FROM archive a JOIN rm_matches m ON m.proposed_event = a.event_id"
        " WHERE a.topic = 'matches.events' AND m.supply = 'fund' LIMIT 1"
    )
    env = decode(real[0])
    p = env.payload
    assert isinstance(p, MatchProposed) and p.amount is not None
    forged_id = uuid.uuid4()
    payload = p.model_copy(
        update={
            "match_id": uuid.uuid4(),
            "amount": Money(amount_minor=10**12, currency=p.amount.currency),
            "supply": SupplyKind.FUND,
        }
    )
    forged = env.model_copy(update={"event_id": forged_id, "payload": payload})
    rec = Record("matches.events", 0, 10_000, b"k", encode(forged),
                 tuple(headers_for(forged_id, "MatchProposed")))  # fmt: skip
    await prepare(db)
    await archive_batch(db, [rec])
    return forged_id, payload


async def test_replay_rebuilds_every_read_model_and_decision(db: asyncpg.Connection) -> None:
    records = await archive_city(db)

    proj = await replay_projections(db)
    inputs, logged = await archived_matcher_log(db)
    matcher = replay_matcher(inputs, logged)

    assert proj.equal, [str(d) for d in proj.shown]
    assert proj.events == len(records)
    assert proj.projected < len({r.event_id for r in records})  # only what changes a table
    assert await db.fetchval("SELECT count(*) FROM rm_matches") > 10
    assert proj.ignored["rm_needs"] == ("updated_at",)
    assert matcher.equal, [str(d) for d in matcher.differences]
    assert matcher.decisions == sum(1 for r in records if r.topic == "matches.events") + sum(
        1 for r in records if r.topic == "matcher.inputs" and decode(r.value).event_type
        in ("SupplyRequested", "SupplyGranted", "SupplyRefused", "SupplyReleased", "SupplyRevoked")
    )  # fmt: skip
    schemas = await db.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'audit_replay_%'"
    )
    assert schemas == 0, "the scratch schema is dropped"


async def test_archive_order_of_matcher_inputs_is_each_partitions_log_order(
    db: asyncpg.Connection,
) -> None:
    records = await archive_city(db)
    inputs, _ = await archived_matcher_log(db)
    for partition, archived in inputs.items():
        logged = [r for r in records if r.topic == "matcher.inputs" and r.partition == partition]
        assert [r.offset for r in archived] == [r.offset for r in logged]
        assert [r.value for r in archived] == [r.value for r in logged]


async def test_replay_names_a_read_model_row_changed_behind_the_ledgers_back(
    db: asyncpg.Connection,
) -> None:
    await archive_city(db)
    need = await db.fetchrow("SELECT need_id, posted_event FROM rm_needs WHERE filled > 0 LIMIT 1")
    await db.execute("UPDATE rm_needs SET filled = filled + 1 WHERE need_id = $1", need[0])
    line = await db.fetchrow("SELECT event_id, line_no FROM journal_lines LIMIT 1")
    await db.execute("DELETE FROM journal_lines WHERE event_id = $1 AND line_no = $2", *line)

    proj = await replay_projections(db)

    assert not proj.equal
    assert proj.differences["rm_needs"] == 1
    assert proj.differences["journal_lines"] == 1
    assert proj.differences["rm_matches"] == 0
    changed = next(d for d in proj.shown if d.table == "rm_needs")
    assert changed.key == (need[0],) and changed.kind == "different"
    assert changed.columns == ("filled",)
    assert changed.events[0] == need[1], "the events that wrote the row are named"
    gone = next(d for d in proj.shown if d.table == "journal_lines")
    assert gone.kind == "missing" and gone.key == (line[0], line[1])
    assert gone.events == (line[0],)


async def test_matcher_replay_finds_a_tampered_decision_and_its_cause(
    db: asyncpg.Connection,
) -> None:
    await archive_city(db)
    row = await db.fetchrow(
        "SELECT archive_seq, event_id, value FROM archive WHERE topic = 'matches.events'"
        " AND event_type = 'MatchProposed' ORDER BY archive_seq LIMIT 1 OFFSET 3"
    )
    forged = row["value"].replace(b'"zone":"', b'"zone":"x', 1)
    assert forged != row["value"]
    await db.execute("UPDATE archive SET value = $2 WHERE archive_seq = $1", row[0], forged)

    inputs, logged = await archived_matcher_log(db)
    report = replay_matcher(inputs, logged)

    assert [(d.kind, d.event_id) for d in report.differences] == [("differs", row[1])]
    diff = report.differences[0]
    assert diff.cause == decode(row["value"]).causation_id
    assert diff.logged == forged and diff.replayed == row["value"]
    assert "first difference at byte" in str(diff)


async def test_invariants_hold_on_a_real_week_and_name_a_forged_overspend(
    db: asyncpg.Connection,
) -> None:
    await archive_city(db)
    clean = await check_archive(db)
    assert clean.violations == [] and clean.events > 100

    forged_id, p = await forge_overspend(db)
    assert p.fund_id is not None

    found = await check_archive(db)

    kinds = {(v.kind, v.subject) for v in found.violations}
    assert ("over-spent", p.fund_id) in kinds
    assert ("over-filled", p.need_id) in kinds
    assert all(v.events[-1] == forged_id for v in found.violations)


async def test_the_command_replays_from_the_archive_and_from_kafka_and_exits_by_result(
    broker: EmbeddedBroker,
    database_url: str,
    db: asyncpg.Connection,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # Given a city's week on the broker's topics, archived by the running ledger
    records = simulate(generate(needs=60, volunteers=30, funds=6, seed=5).events)
    ensure_topics(broker.bootstrap)
    w = producer(broker.bootstrap)
    for r in records:
        w.send(r.topic, key=r.key, value=r.value, partition=r.partition, headers=list(r.headers))
    w.flush()
    w.close()
    stop = asyncio.Event()
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url, var_dir=tmp_path
    )
    ledger = asyncio.create_task(run_ledger(settings, stop))
    await wait_until(db, EVENTS_ARCHIVED, len(records))
    stop.set()
    await ledger

    # When the auditor replays from either source, Then both equal the live state
    assert await _replay(database_url, "", 5) == 0
    assert await _replay(database_url, broker.bootstrap, 5) == 0
    out = capsys.readouterr().out
    assert "all equal byte for byte" in out and "from the topics" in out

    # When a match's status is changed behind the ledger's back, Then it is named: exit 1
    match_id = await db.fetchval("SELECT match_id FROM rm_matches LIMIT 1")
    await db.execute("UPDATE rm_matches SET status = 'completed' WHERE match_id = $1", match_id)
    assert await _replay(database_url, broker.bootstrap, 5) == 1
    out = capsys.readouterr().out
    assert f"DIFFERENT rm_matches ({match_id}) differs in status" in out


def test_a_refund_the_matcher_answers_is_clean_for_the_command(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 6 through the services' own processors (intake, router, every matcher partition)
    and the ledger's write path: two proposals hold all of a fund, part of the donation is
    refunded, the fund's owner withdraws (or revokes a hold elsewhere). `exchange audit
    invariants` exits 0: the over-reservation between the refund and the withdrawal is the
    matcher's answer on its way, not an over-spend."""
    from schemas.topics import MATCHER_INPUTS
    from tests.unit.test_audit_invariants import refund_case_inputs

    records = simulate(refund_case_inputs(MATCHER_INPUTS.partitions))
    kinds = [r.event_type for r in records]
    refunded = kinds.index("DonationRefunded")
    assert kinds[:refunded].count("MatchProposed") == 2  # all 800,000 held, then the refund
    assert "SupplyRevoked" in kinds[refunded:] and "MatchWithdrawn" in kinds[refunded:]

    async def archive() -> None:
        from services.platform.db import connect

        conn = await connect(database_url)
        try:
            await prepare(conn)
            await archive_batch(conn, records)
        finally:
            await conn.close()

    asyncio.run(archive())

    assert main_exit(["audit", "invariants", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "VIOLATION" not in out and "PENDING" not in out, out


def test_the_command_exits_2_when_it_cannot_run() -> None:
    nowhere = "postgresql://nobody@127.0.0.1:1/nothing"
    assert main_exit(["audit", "replay", "--database-url", nowhere]) == 2
    assert main_exit(["audit", "invariants", "--database-url", nowhere]) == 2


def main_exit(argv: list[str]) -> int:
    from services.cli import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code or 0)


async def test_replay_follows_matches_through_completion_and_decline(
    db: asyncpg.Connection,
) -> None:
    """Given money and shift matches that are completed, declined and completed again (journal
    moves, minutes served, need status), archived by the ledger's write path."""
    from schemas.messages import MatchAccepted, MatchCompleted, MatchDeclined, PledgeWithdrawn
    from tests.unit.test_audit_invariants import World, cny, fund_match, shift_match

    w = World()
    money = fund_match(w.need, w.fund, 300_000)
    declined = fund_match(w.need, w.fund, 100_000)
    shift = shift_match(w.shift_need, w.vol, 0, 2)
    w.add(declined)  # first: a row without minutes_served, unlike the completed ones
    w.add(money)
    w.add(shift)
    w.add(MatchDeclined(match_id=declined.match_id, need_id=w.need))
    w.add(MatchAccepted(match_id=shift.match_id, need_id=w.shift_need))
    w.add(MatchCompleted(match_id=money.match_id, need_id=w.need, amount=cny(300_000)))
    w.add(MatchCompleted(match_id=shift.match_id, need_id=w.shift_need, minutes_served=90))
    w.add(PledgeWithdrawn(volunteer_id=w.vol, reason="moving away"))
    records = [
        Record("t", 0, i, b"k", encode(e), tuple(headers_for(e.event_id, e.event_type)))
        for i, e in enumerate(w.log)
    ]
    await prepare(db)
    await archive_batch(db, records)

    proj = await replay_projections(db)

    assert proj.equal, [str(d) for d in proj.shown]
    assert (
        await db.fetchval(
            "SELECT minutes_served FROM rm_matches WHERE match_id = $1", shift.match_id
        )
        == 90
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM journal_lines WHERE event_id = $1", w.log[-3].event_id
        )
        == 2
    )
    minutes = await db.fetch(
        "SELECT account, sum(amount_minor) AS n FROM journal_lines WHERE currency = 'MIN'"
        " GROUP BY account"
    )
    balances = {r["account"].split(":")[-1]: r["n"] for r in minutes if str(w.vol) in r["account"]}
    assert balances["served"] == 90 and balances["reserved"] == 0  # pledge and shift moved


async def test_decoding_in_worker_processes_folds_the_same_tables(db: asyncpg.Connection) -> None:
    await archive_city(db)
    one = await fold_archive(db)
    two = await fold_archive(db, batch=150, jobs=2)
    assert two.tables == one.tables and two.writers == one.writers
    assert one.events > 100
