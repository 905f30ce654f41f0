"""Dead letters as operators see them: how many events were set aside, and the latest reason.

Every consumer parks what it cannot handle on `<topic>.dlq` (undecodable bytes, an event its
decision or projection raised on), and the ledger archives those topics like any other, so the
archive counts them all. Events the ledger itself set aside are counted from its own record as
well, so they show at once, before their dead letters are published and archived back. The
two sources name a dead letter by the same id, so none is counted twice.

A dead letter means the exchange went on without one event: /healthz keeps its status (the
stream is flowing) but shows the count and the latest reason, and /metrics exports the count,
so an operator is alerted and can look at the event (`exchange audit` reads the archive).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

TYPE = "MessageDeadLettered"

SUMMARY = """
WITH letters AS (
    SELECT event_id, archive_seq, value, NULL::text AS reason, NULL::timestamptz AS at
      FROM archive WHERE event_type = $1
    UNION ALL
    SELECT dead_letter_id, archive_seq, dead_letter, reason, set_aside_at
      FROM projection_set_aside
     WHERE dead_letter_id NOT IN (SELECT event_id FROM archive WHERE event_type = $1)
)
SELECT (SELECT count(DISTINCT event_id) FROM letters) AS total, latest.*
  FROM (SELECT value, reason, at FROM letters ORDER BY archive_seq DESC LIMIT 1) AS latest
 RIGHT JOIN (SELECT 1) AS one ON true
"""


@dataclass(frozen=True)
class DeadLetters:
    """What /healthz shows: the count, and the latest dead letter's consumer, topic and why."""

    count: int
    latest_reason: str | None = None
    latest_topic: str | None = None
    latest_consumer: str | None = None

    def report(self) -> dict[str, Any]:
        """The JSON /healthz carries under `dead_letters`."""
        return asdict(self)

    def metrics(self) -> list[str]:
        """Prometheus lines for /metrics."""
        return [
            "# HELP exchange_dead_letters_total Events set aside on dead-letter topics.",
            "# TYPE exchange_dead_letters_total counter",
            f"exchange_dead_letters_total {self.count}",
        ]


async def dead_letters(conn: asyncpg.Connection | asyncpg.Pool) -> DeadLetters:
    """Count the dead letters and describe the latest (by archive order)."""
    row = await conn.fetchrow(SUMMARY, TYPE)
    if row is None or not row["total"]:
        return DeadLetters(0)
    payload: dict[str, Any] = {}
    if row["value"] is not None:
        try:
            payload = json.loads(row["value"]).get("payload", {})
        except (ValueError, AttributeError):
            payload = {}
    return DeadLetters(
        int(row["total"]),
        row["reason"] or payload.get("reason"),
        payload.get("topic"),
        payload.get("consumer"),
    )


__all__ = ["DeadLetters", "dead_letters"]
