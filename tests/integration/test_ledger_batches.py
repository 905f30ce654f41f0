"""The ledger projects a batch at a time over the rows it loads: where batches are cut must not
matter. The hand-worked scenario (donations, a refund, matches proposed, declined and completed
across funds and a volunteer, a pledge amended by its moves) is archived in batches of several
sizes; each time the live read models and journal must equal the replay's fold of the whole
log from nothing, which has no batches at all."""

from __future__ import annotations

import asyncpg
import pytest

from services.audit.replay.rebuild import replay_projections
from services.ledger.archive import archive_batch, prepare
from tests.integration.test_audit_reports import scenario

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_batch_boundaries_do_not_change_the_books(db: asyncpg.Connection, size: int) -> None:
    records = scenario().records()
    await prepare(db)
    for i in range(0, len(records), size):
        await archive_batch(db, records[i : i + size])
    assert await db.fetchval("SELECT count(*) FROM projected_events") == len(records)
    report = await replay_projections(db)
    assert report.events == len(records)
    assert report.equal, [str(d) for d in report.shown]
    # not a vacuous equality: the scenario moves money and minutes across batch boundaries
    assert await db.fetchval("SELECT count(*) FROM journal_lines") > 20
    statuses = {r[0] for r in await db.fetch("SELECT status FROM rm_matches")}
    assert {"declined", "completed"} <= statuses
