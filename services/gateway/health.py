"""Whether the exchange can serve: every service alive and ready, and the archive keeping up."""

from __future__ import annotations

from typing import Any

import asyncpg

from services import SERVICES, group_of
from services.platform.dead_letters import dead_letters
from services.settings import Settings


async def check(
    pool: asyncpg.Pool | asyncpg.Connection,
    stale_after: float,
    archive_lag: float,
    decision_lag: float,
) -> dict[str, Any]:
    """A report with `ok` true only when every service beat recently and said it is ready, no
    posting accepted more than `archive_lag` seconds ago is still missing from the archive, and
    none accepted more than `decision_lag` seconds ago is still undecided."""
    rows = await pool.fetch(
        "SELECT service, pid, ready, extract(epoch FROM now() - beat_at) AS age, details"
        " FROM service_heartbeats"
    )
    seen = {r["service"]: r for r in rows}
    services: dict[str, Any] = {}
    for name in [*SERVICES, *sorted(set(seen) - set(SERVICES))]:
        r = seen.get(name)
        if r is None:
            services[name] = {"ok": False, "reason": "never started"}
            continue
        age = float(r["age"])
        ok = bool(r["ready"]) and age <= stale_after
        reason = None if ok else ("not ready" if age <= stale_after else f"silent for {age:.0f}s")
        services[name] = {"ok": ok, "reason": reason, "pid": r["pid"], **r["details"]}
    # a worker group is up while one member is: the others' partitions move to it
    groups: dict[str, bool] = {}
    for name, report in services.items():
        group = group_of(name)
        if group is not None:
            groups[group] = groups.get(group, False) or report["ok"]
    needed = [
        report["ok"] or (group_of(name) is not None and groups[group_of(name) or ""])
        for name, report in services.items()
        if name in SERVICES or group_of(name) is None
    ]
    lagging = await pool.fetchval(
        "SELECT count(*) FROM postings WHERE archived_at IS NULL"
        " AND accepted_at < now() - make_interval(secs => $1)",
        archive_lag,
    )
    undecided = await pool.fetchval(
        "SELECT count(*) FROM postings WHERE decided_at IS NULL"
        " AND accepted_at < now() - make_interval(secs => $1)",
        decision_lag,
    )
    ok = all(needed) and lagging == 0 and undecided == 0
    return {
        "ok": ok,
        "services": services,
        "groups": groups,
        "postings_not_yet_archived": lagging,
        "postings_not_yet_decided": undecided,
        "dead_letters": (await dead_letters(pool)).report(),
    }


async def check_for(pool: asyncpg.Pool | asyncpg.Connection, settings: Settings) -> dict[str, Any]:
    """`check` with the bounds the exchange is configured with (the gateway's /healthz and the
    web app's overview ask the same question)."""
    return await check(
        pool,
        settings.stale_after_seconds,
        settings.archive_lag_seconds,
        settings.decision_lag_seconds,
    )


def public_reason(report: dict[str, Any]) -> str | None:
    """The one coarse reason the public `/healthz` gives for a failing report (None when ok).

    Why coarse: anyone may call `/healthz` (load balancers, uptime checks); which services run,
    their pids, the paths and free space of disks, and the relay's backlog are for operators
    (`exchange status` reads them from the database) and auditors (their token)."""
    if report.get("reason"):
        return str(report["reason"])
    if report.get("ok"):
        return None
    if not all(
        s["ok"] or (group_of(name) is not None and report["groups"].get(group_of(name)))
        for name, s in report.get("services", {}).items()
    ):
        return "services_not_ready"
    if report.get("postings_not_yet_archived"):
        return "archive_lagging"
    if report.get("postings_not_yet_decided"):
        return "decisions_lagging"
    return "not_ready"
