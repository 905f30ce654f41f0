"""Who may meet what: skills, travel, availability, calendars and weekly limits for
volunteers; earmarks, caps and balances for funds. Pure predicates, no state changes.

They read views (services.domain.matching.views), not pydantic specs: a need is tested
against hundreds of volunteers, so each test is a few comparisons of plain values."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.common import NeedKind, Urgency
from schemas.specs import FundSpec, NeedSpec, PledgeSpec, TravelRange
from services.domain.matching.state import Fund, OpenNeed, Volunteer
from services.domain.matching.views import NeedView, PledgeView, Spot
from services.domain.zones import distance_km


def pledge_fits(spec: NeedSpec, pledge: PledgeSpec) -> bool:
    """What a pledge alone decides: skills, travel and availability (calendars aside)."""
    return view_fits(NeedView.of(spec), PledgeView.of(pledge))


def view_fits(need: NeedView, pledge: PledgeView) -> bool:
    """`pledge_fits` on views."""
    shift = need.shift
    if need.kind is not NeedKind.VOLUNTEER_HOURS or shift is None:
        return False
    if not need.required <= pledge.skills:
        return False
    # the common ranges first, as travel_reaches decides them
    travel = pledge.travel
    if pledge.travel_km is not None or travel is not TravelRange.ANYWHERE:
        if pledge.travel_km is None and travel is TravelRange.SAME_DISTRICT:
            if pledge.home.district != need.place.district:
                return False
        elif not travel_reaches(pledge, need.place):
            return False
    return pledge.available(*shift)


def travel_reaches(pledge: PledgeView, place: Spot) -> bool:
    """Whether the place is within how far the volunteer said they will go: by distance when
    they gave one and both places carry coordinates, otherwise by community, street, district
    or anywhere."""
    home = pledge.home
    km = distance_km(home, place) if pledge.travel_km is not None else None
    if km is not None:
        assert pledge.travel_km is not None
        return km <= pledge.travel_km
    if pledge.travel is TravelRange.ANYWHERE:
        return True
    if home.district != place.district:
        return False
    if pledge.travel is TravelRange.SAME_DISTRICT:
        return True
    if home.street is None or home.street != place.street:
        return False
    if pledge.travel is TravelRange.SAME_STREET:
        return True
    return home.community is not None and home.community == place.community


def distance_rank(pledge: PledgeView, need: NeedView) -> tuple[int, float]:
    """How far the volunteer is from the need: same community, street, district or further,
    then kilometres when both places carry coordinates. Nearer volunteers are asked first;
    it also keeps those who travel far for the needs nobody nearer can serve."""
    home, place = pledge.home, need.place
    km = distance_km(home, place)
    far = 0.0 if km is None else round(km, 3)
    if home.district != place.district:
        return 3, far
    if home.street is None or home.street != place.street:
        return 2, far
    same = home.community is not None and home.community == place.community
    return (0 if same else 1), far


def volunteer_fits(need: OpenNeed, vol: Volunteer, kept_percent: int = 0) -> bool:
    """Skills, travel, availability, no overlapping shift, weekly limit, not already on it;
    `kept_percent` of the weekly limit stays free (held back for urgent shifts: `kept_for`)."""
    view = need.view
    slot = view.slot
    if slot is None or vol.withdrawn or not view_fits(view, vol.pledge):
        return False
    if need.volunteers and vol.volunteer_id in need.volunteers:
        return False
    start, end, minutes, week = slot
    held = 0
    for b in vol.booked.values():
        if b[0] < end and start < b[1]:
            return False
        if b[3] == week:
            held += b[2]
    limit = vol.pledge.limit
    return held + minutes <= limit - limit * kept_percent // 100


def kept_for(need: OpenNeed, now: datetime, horizon: timedelta, percent: int) -> int:
    """The share of each volunteer's weekly limit a shift may not book now: `percent` for a low
    or normal shift that starts further than `horizon` away, else 0 (urgent shifts, and every
    shift once it is near, may book all of it)."""
    shift = need.view.shift
    if not percent or shift is None or need.view.urgency >= URGENT:
        return 0
    return percent if shift[0] - horizon > now else 0


def fund_may_pay(need: OpenNeed, spec: FundSpec, now: datetime) -> bool:
    """What earmarks alone decide: currency, category, district and period (balances aside)."""
    view = need.view
    if view.currency is None or view.currency != spec.currency:
        return False
    return spec.allows(view.category, view.place.district, now)


URGENT = Urgency.HIGH.rank
"""High and critical needs may take a fund's reserve at any time."""

NO_HORIZON = timedelta(0)


def reserve_holds(
    need: OpenNeed, valid_until: datetime | None, now: datetime, horizon: timedelta
) -> bool:
    """Whether a fund's reserve still holds against this need: the need is low or normal, its
    deadline is further than `horizon` away, and so is the fund's end of validity."""
    if need.view.urgency >= URGENT or need.view.deadline - horizon <= now:
        return False
    return valid_until is None or valid_until - horizon > now


def fund_share(need: OpenNeed, fund: Fund, now: datetime, horizon: timedelta = NO_HORIZON) -> int:
    """How much of the need this fund may pay now under its earmarks (0 when none), leaving
    the fund's reserve for urgent needs while it holds (`reserve_holds`)."""
    view = need.view
    if view.currency is None or view.currency != fund.spec.currency or fund.available <= 0:
        return 0
    if not fund.spec.allows(view.category, view.place.district, now):
        return 0
    free = fund.available
    if fund.reserve and reserve_holds(need, fund.spec.valid_until, now, horizon):
        free -= fund.reserve
    share = min(need.remaining, free)
    if fund.spec.cap_per_need is not None:
        cap = fund.spec.cap_per_need.amount_minor - need.from_funds.get(fund.fund_id, 0)
        share = min(share, cap)
    return max(share, 0)
