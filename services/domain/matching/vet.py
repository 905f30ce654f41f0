"""Checks an input before the matcher changes anything for it (validate before mutate).

A schema-valid input can carry values the policy cannot compute with: goods whose cost is more
money than `Money` may hold, a deadline or an availability so near the end of year 9999 that its
Nanjing week or UTC day does not exist. Computing what the policy will derive from the input
*first*, before any state changes, lets the matcher set such an input aside with the state
untouched (`SetAside`), and without the rollback that `services.platform.processor.process`
falls back on for failures nobody foresaw.

Pure; the same input is refused the same way on every replay.
"""

from __future__ import annotations

from datetime import timedelta

from schemas.envelope import Envelope
from schemas.messages import Message, NeedAmended, NeedPosted, PledgeAmended, PledgeMade
from schemas.reservations import SupplyListed, SupplyRequested
from schemas.specs import NeedSpec, PledgeSpec
from services.domain.matching.skills import filing
from services.domain.matching.state import DEFAULT_POLICY
from services.domain.matching.views import NeedView, PledgeView
from services.domain.matching.weeks import local_week
from services.domain.set_aside import SetAside, reason_of, settable_aside
from services.domain.zones import need_zone


def vet(event: Envelope[Message]) -> None:
    """Raise `SetAside` if the policy could not compute with this input; change nothing."""
    try:
        _check(event)
    except Exception as exc:
        if not settable_aside(exc):
            raise
        raise SetAside(reason_of(exc)) from exc


def _check(event: Envelope[Message]) -> None:
    p = event.payload
    # a proposal made now expires `proposal_ttl` later, in Nanjing's weeks
    local_week(event.recorded_at + DEFAULT_POLICY.proposal_ttl)
    need: NeedSpec | None = None
    pledge: PledgeSpec | None = None
    if isinstance(p, NeedPosted | NeedAmended | SupplyRequested):
        need = p.need
    elif isinstance(p, PledgeMade | PledgeAmended | SupplyListed):
        pledge = p.pledge
    if need is not None:
        NeedView.of(need)  # quantity (money wanted), the deadline's and the shift's weeks
        need_zone(need)
        if need.shift is not None:
            local_week(need.shift.end - timedelta(microseconds=1))
    if pledge is not None:
        view = PledgeView.of(pledge)
        filing(view)  # the UTC days it is filed under
        for start, end in zip(view.starts, view.ends, strict=True):
            local_week(start)
            local_week(end)
