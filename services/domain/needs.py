"""How a need's size is counted, one rule for the matcher and for the read models."""

from __future__ import annotations

from schemas.common import NeedKind
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
