"""Whether the exchange can serve: every service alive and ready, and the archive keeping up."""

from __future__ import annotations

from typing import Any

import asyncpg

from services import SERVICES


async def check(pool: asyncpg.Pool, stale_after: float, archive_lag: float) -> dict[str, Any]:
    """A report with `ok` true only when every service beat recently and said it is ready, and
    no posting accepted more than `archive_lag` seconds ago is still missing from the archive."""
    rows = await pool.fetch(
        "SELECT service, pid, ready, extract(epoch FROM now() - beat_at) AS age, details"
        " FROM service_heartbeats"
    )
    seen = {r["service"]: r for r in rows}
    services: dict[str, Any] = {}
    for name in SERVICES:
        r = seen.get(name)
        if r is None:
            services[name] = {"ok": False, "reason": "never started"}
            continue
        age = float(r["age"])
        ok = bool(r["ready"]) and age <= stale_after
        reason = None if ok else ("not ready" if age <= stale_after else f"silent for {age:.0f}s")
        services[name] = {"ok": ok, "reason": reason, "pid": r["pid"], **r["details"]}
    lagging = await pool.fetchval(
        "SELECT count(*) FROM postings WHERE archived_at IS NULL"
        " AND accepted_at < now() - make_interval(secs => $1)",
        archive_lag,
    )
    ok = all(s["ok"] for s in services.values()) and lagging == 0
    return {"ok": ok, "services": services, "postings_not_yet_archived": lagging}
