"""The auditor's reports over HTTP: read-only, for organisations registered as auditors.

`GET /v1/audit/invariants` runs the same checks as `exchange audit invariants`. The checks are
a fold over the archive in archive_seq order, so the gateway keeps the checker between requests
and each request only reads what was archived since the last one (one request at a time). The
full replay (`exchange audit replay`) rebuilds every read model and is a command, not a route.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from schemas.common import Role
from services.audit.replay.rebuild import check_archive
from services.audit.reports.invariants import InvariantChecker
from services.gateway.deps import Caller, Pool, require_role

router = APIRouter(prefix="/v1/audit", tags=["audit"])

API_BATCH = 2000
"""Archive rows decoded between two awaits: keeps other requests served during a long check."""


@router.get("/invariants")
async def invariants(request: Request, who: Caller, pool: Pool) -> dict[str, Any]:
    """Over-spent funds, over-filled needs, double-booked or over-limit volunteers and broken
    earmarks anywhere in the log, each with the events involved. Auditors only (403 else)."""
    require_role(who, Role.AUDITOR)
    state = request.app.state
    if not hasattr(state, "audit_lock"):
        state.audit_lock = asyncio.Lock()
        state.audit_checker = InvariantChecker()
    async with state.audit_lock, pool.acquire() as conn:
        checker = await check_archive(
            conn, batch=API_BATCH, checker=state.audit_checker,
            after=state.audit_checker.archive_seq,
        )  # fmt: skip
        # judged now, not kept: a refund still pending becomes a violation only later
        now = datetime.now(UTC)
        violations, pending = checker.verdict(now), checker.pending(now)
    return {
        "ok": not violations,
        "events_checked": checker.events,
        "as_of_archive_seq": checker.archive_seq,
        "violations": [
            {
                "kind": v.kind,
                "subject": str(v.subject),
                "detail": v.detail,
                "events": [str(e) for e in v.events],
            }
            for v in violations
        ],
        "pending": [
            {"fund": str(p.fund_id), "refund": str(p.refund), "detail": p.detail} for p in pending
        ],
    }
