"""Who may meet what: skills, travel, availability, calendars and weekly limits for
volunteers; earmarks, caps and balances for funds. Pure predicates, no state changes."""

from __future__ import annotations

from datetime import datetime

from schemas.common import NeedKind, Place
from schemas.specs import NeedSpec, PledgeSpec, TravelRange
from services.domain.matching.state import Fund, OpenNeed, Volunteer
from services.domain.zones import distance_km


def pledge_fits(spec: NeedSpec, pledge: PledgeSpec) -> bool:
    """What a pledge alone decides: skills, travel and availability (calendars aside)."""
    shift = spec.shift
    if spec.kind is not NeedKind.VOLUNTEER_HOURS or shift is None:
        return False
    if not set(spec.required_skills) <= set(pledge.skills):
        return False
    if not travel_reaches(pledge, spec.place):
        return False
    return any(w.covers(shift) for w in pledge.availability)


def travel_reaches(pledge: PledgeSpec, place: Place) -> bool:
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


def distance_rank(pledge: PledgeSpec, spec: NeedSpec) -> tuple[int, float]:
    """How far the volunteer is from the need: same community, street, district or further,
    then kilometres when both places carry coordinates. Nearer volunteers are asked first;
    it also keeps those who travel far for the needs nobody nearer can serve."""
    home, place = pledge.home, spec.place
    km = distance_km(home, place)
    far = 0.0 if km is None else round(km, 3)
    if home.district != place.district:
        return 3, far
    if home.street is None or home.street != place.street:
        return 2, far
    same = home.community is not None and home.community == place.community
    return (0 if same else 1), far


def volunteer_fits(need: OpenNeed, vol: Volunteer) -> bool:
    """Skills, travel, availability, no overlapping shift, weekly limit, not already on it."""
    shift = need.spec.shift
    if shift is None or vol.withdrawn or vol.volunteer_id in need.volunteers:
        return False
    if not pledge_fits(need.spec, vol.spec):
        return False
    if any(b.overlaps(shift) for b in vol.booked.values()):
        return False
    limit = vol.spec.weekly_hour_limit * 60
    return vol.booked_minutes_in_week(shift.start) + shift.minutes <= limit


def fund_share(need: OpenNeed, fund: Fund, now: datetime) -> int:
    """How much of the need this fund may pay now under its earmarks (0 when none)."""
    wanted = need.spec.money_wanted
    if wanted is None or wanted.currency != fund.spec.currency or fund.available <= 0:
        return 0
    if not fund.spec.allows(need.spec.category, need.spec.place.district, now):
        return 0
    share = min(need.remaining, fund.available)
    if fund.spec.cap_per_need is not None:
        cap = fund.spec.cap_per_need.amount_minor - need.from_funds.get(fund.fund_id, 0)
        share = min(share, cap)
    return max(share, 0)
