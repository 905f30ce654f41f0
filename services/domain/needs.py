"""How a need's size is counted (one rule for the matcher and the read models), and which
needs a weekly need stands for."""

from __future__ import annotations

import uuid

from schemas.common import NeedKind, TimeWindow
from schemas.envelope import derive_id
from schemas.needs import WEEK
from schemas.specs import NeedSpec


def need_quantity(spec: NeedSpec) -> tuple[int, str]:
    """(amount wanted, unit): volunteers for a shift, minor units of money, or goods units.

    Goods with a unit cost are counted in money, since funds are what can meet them here."""
    if spec.kind is NeedKind.VOLUNTEER_HOURS:
        assert spec.volunteers_needed is not None
        return spec.volunteers_needed, "volunteer"
    money = spec.money_wanted
    if money is not None:
        return money.amount_minor, money.currency
    assert spec.quantity is not None and spec.unit is not None
    return spec.quantity, spec.unit


def occurrences(need_id: uuid.UUID, spec: NeedSpec, weeks: int) -> list[tuple[uuid.UUID, NeedSpec]]:
    """The needs a weekly need stands for: the first as posted, under its own id; each later
    one seven days after the one before (shift and deadline),
    under an id derived from the first, so that the gateway, the intake service and a replay
    all name the same occurrences.

    Seven days are 7 x 24 hours. Nanjing keeps one offset all year, so each occurrence falls
    at the same local time; a time written with another offset moves with it, as an instant."""
    out = [(need_id, spec)]
    for k in range(1, weeks):
        shift = spec.shift
        moved = spec.model_copy(
            update={
                "deadline": spec.deadline + k * WEEK,
                "shift": None
                if shift is None
                else TimeWindow(start=shift.start + k * WEEK, end=shift.end + k * WEEK),
            }
        )
        out.append(
            (derive_id(need_id, f"occurrence/{k}"), NeedSpec.model_validate(moved.model_dump()))
        )
    return out
