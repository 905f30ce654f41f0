"""One archived event with the evidence that it is in the signed log: `GET /v1/audit/events/{id}`.

Auditors only (403 for every other role), as the other audit routes: an event's JSON is what the
log holds, sealed fields sealed, and it names organisations, funds and volunteers by id."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from schemas.common import Role
from services.gateway.deps import Caller, Pool, require_role
from services.web.auditor_data import event_evidence

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/events/{event_id}")
async def get_event(request: Request, pool: Pool, who: Caller, event_id: uuid.UUID) -> Any:
    """The event as archived (its JSON, topic, partition, offset, archive sequence, content
    hash) and the RFC 6962 inclusion proof of its leaf under the latest stored checkpoint that
    covers it, checked against that checkpoint's root and, with EXCHANGE_AUDIT_PUBLIC_KEY set,
    its signature (`inclusion` is null until a checkpoint covers the event). 404: not archived."""
    require_role(who, Role.AUDITOR)
    found = await event_evidence(pool, event_id, request.app.state.settings)
    if found is None:
        raise HTTPException(404, "no such event in the archive")
    return found
