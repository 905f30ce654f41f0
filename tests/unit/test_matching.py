"""The skeleton matching rule: fits, earmarks, no double booking, no over-filling, replayable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    FundOpened,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.domain.matching import MatcherState, apply
from tests import factories as f

pytestmark = pytest.mark.unit


def need(body: dict[str, Any]) -> Envelope[Message]:
    return f.envelope(NeedPosted(need_id=uuid.uuid4(), need=NeedSpec.model_validate(body)))


def volunteer(**over: Any) -> Envelope[Message]:
    return f.envelope(
        PledgeMade(volunteer_id=uuid.uuid4(), pledge=PledgeSpec.model_validate(f.pledge(**over)))
    )


def fund_with(amount: int, **over: Any) -> tuple[Envelope[Message], Envelope[Message]]:
    fund_id = uuid.uuid4()
    opened = f.envelope(FundOpened(fund_id=fund_id, fund=FundSpec.model_validate(f.fund(**over))))
    gift = f.envelope(
        DonationReceived(
            fund_id=fund_id,
            donation_id=uuid.uuid4(),
            donation=DonationSpec.model_validate(f.donation(amount)),
        )
    )
    return opened, gift


def run(events: list[Envelope[Message]]) -> list[MatchProposed]:
    state = MatcherState()
    out = [p for e in events for p in apply(state, e)]
    return [p.payload for p in out]  # type: ignore[misc]


def test_a_fitting_volunteer_is_proposed_for_the_shift() -> None:
    [m] = run([need(f.volunteer_need(volunteers_needed=1)), volunteer()])
    assert m.supply.value == "volunteer" and m.minutes == 120


def test_missing_skill_wrong_district_or_no_availability_means_no_match() -> None:
    assert run([need(f.volunteer_need()), volunteer(skills=["tutoring"])]) == []
    assert run([need(f.volunteer_need()), volunteer(home={"district": "江宁区"})]) == []
    late = [{"start": f.iso(f.T0 + timedelta(hours=1)), "end": f.iso(f.T0 + timedelta(hours=5))}]
    assert run([need(f.volunteer_need()), volunteer(availability=late)]) == []


def test_a_volunteer_travelling_anywhere_crosses_districts() -> None:
    assert (
        len(
            run(
                [
                    need(f.volunteer_need()),
                    volunteer(home={"district": "江宁区"}, travel="anywhere"),
                ]
            )
        )
        == 1
    )


def test_a_volunteer_is_never_booked_on_two_overlapping_shifts() -> None:
    first = need(f.volunteer_need(volunteers_needed=1, title="第一"))
    second = need(f.volunteer_need(volunteers_needed=1, title="第二"))
    matches = run([first, second, volunteer()])
    assert len(matches) == 1


def test_touching_shifts_can_both_be_served() -> None:
    a = f.volunteer_need(
        volunteers_needed=1, shift={"start": f.iso(f.T0), "end": f.iso(f.T0 + timedelta(hours=1))}
    )
    b = f.volunteer_need(
        volunteers_needed=1,
        shift={"start": f.iso(f.T0 + timedelta(hours=1)), "end": f.iso(f.T0 + timedelta(hours=2))},
    )
    assert len(run([need(a), need(b), volunteer()])) == 2


def test_the_weekly_hour_limit_holds() -> None:
    a = f.volunteer_need(
        volunteers_needed=1, shift={"start": f.iso(f.T0), "end": f.iso(f.T0 + timedelta(hours=2))}
    )
    b = f.volunteer_need(
        volunteers_needed=1,
        shift={"start": f.iso(f.T0 + timedelta(hours=2)), "end": f.iso(f.T0 + timedelta(hours=4))},
    )
    assert len(run([need(a), need(b), volunteer(weekly_hour_limit=3)])) == 1


def test_a_need_is_never_filled_beyond_its_quantity() -> None:
    matches = run(
        [need(f.volunteer_need(volunteers_needed=2))]
        + [volunteer(pseudonym=f"志愿者{i}") for i in range(5)]
    )
    assert len(matches) == 2


def test_money_is_split_across_funds_and_never_overspent() -> None:
    o1, d1 = fund_with(100_000)
    o2, d2 = fund_with(150_000)
    matches = run([o1, d1, o2, d2, need(f.money_need(200_000)), need(f.money_need(200_000))])
    per_fund: dict[uuid.UUID | None, int] = {}
    for m in matches:
        assert m.amount is not None
        per_fund[m.fund_id] = per_fund.get(m.fund_id, 0) + m.amount.amount_minor
    assert sorted(per_fund.values()) == [100_000, 150_000]
    assert sum(per_fund.values()) == 250_000


def test_earmarks_hold() -> None:
    opened, gift = fund_with(500_000, categories=["emergency"])
    assert run([opened, gift, need(f.money_need())]) == []


def test_the_cap_per_need_holds() -> None:
    opened, gift = fund_with(500_000, cap_per_need={"amount_minor": 50_000, "currency": "CNY"})
    [m] = run([opened, gift, need(f.money_need(200_000))])
    assert m.amount is not None and m.amount.amount_minor == 50_000


def test_more_urgent_needs_are_served_first_when_money_arrives() -> None:
    opened, gift = fund_with(100_000)
    normal = need(f.money_need(100_000, urgency="normal", title="普通"))
    critical = need(f.money_need(100_000, urgency="critical", title="紧急"))
    [m] = run([opened, normal, critical, gift])
    assert m.need_id == critical.payload.need_id  # type: ignore[attr-defined]


def test_replaying_the_same_input_gives_byte_identical_decisions() -> None:
    opened, gift = fund_with(300_000)
    events = [
        opened,
        gift,
        need(f.money_need()),
        need(f.volunteer_need()),
        volunteer(),
        volunteer(pseudonym="李阿姨"),
    ]
    state_a, state_b = MatcherState(), MatcherState()
    a = [p.model_dump_json() for e in events for p in apply(state_a, e)]
    b = [p.model_dump_json() for e in events for p in apply(state_b, e)]
    assert len(a) == 3  # one fund share, two volunteers
    assert a == b  # decisions, ids included, are byte for byte the same


def test_an_input_seen_twice_is_applied_once() -> None:
    state = MatcherState()
    n, v = need(f.volunteer_need()), volunteer()
    assert len(apply(state, n) + apply(state, v)) == 1
    assert apply(state, v) == [] and apply(state, n) == []


def tick(at: Any) -> Envelope[Message]:
    from schemas.messages import ClockTicked

    return f.envelope(ClockTicked(at=at), at=at)


def test_an_unanswered_proposal_expires_on_a_tick_and_the_next_volunteer_is_asked() -> None:
    from schemas.messages import MatchExpired
    from services.domain.matching import Policy

    state = MatcherState(policy=Policy(proposal_ttl=timedelta(minutes=10)))
    first, second = volunteer(pseudonym="甲"), volunteer(pseudonym="乙")
    n = need(f.volunteer_need(volunteers_needed=1))
    [proposed] = apply(state, first) + apply(state, n)
    assert apply(state, second) == []  # the need is held by the first proposal
    assert apply(state, tick(f.T0 + timedelta(minutes=9))) == []  # not yet
    expired, reproposed = [e.payload for e in apply(state, tick(f.T0 + timedelta(minutes=10)))]
    assert isinstance(expired, MatchExpired)
    assert expired.match_id == proposed.payload.match_id  # type: ignore[attr-defined]
    assert isinstance(reproposed, MatchProposed)
    assert reproposed.volunteer_id == second.payload.volunteer_id  # type: ignore[attr-defined]


def test_a_need_past_its_deadline_gives_back_its_reserved_money() -> None:
    from schemas.messages import MatchWithdrawn

    opened, gift = fund_with(100_000)
    state = MatcherState()
    short = need(f.money_need(100_000, deadline=f.iso(f.T0 + timedelta(hours=1))))
    [_reserved] = [p for e in (opened, gift, short) for p in apply(state, e)]
    [withdrawn] = apply(state, tick(f.T0 + timedelta(hours=1)))
    assert isinstance(withdrawn.payload, MatchWithdrawn)
    later = need(f.money_need(100_000, title="后来的需求"))
    [again] = apply(state, later)  # the money is available again for others
    assert again.payload.amount.amount_minor == 100_000  # type: ignore[attr-defined]


def test_ticks_replay_to_identical_decisions() -> None:
    from services.domain.matching import Policy

    events = [
        volunteer(),
        need(f.volunteer_need(volunteers_needed=1)),
        volunteer(pseudonym="乙"),
        tick(f.T0 + timedelta(hours=1)),
    ]
    policy = Policy(proposal_ttl=timedelta(hours=1))
    state_a, state_b = MatcherState(policy=policy), MatcherState(policy=policy)
    a = [p.model_dump_json() for e in events for p in apply(state_a, e)]
    b = [p.model_dump_json() for e in events for p in apply(state_b, e)]
    assert len(a) == 3  # proposed, expired, proposed to the other
    assert a == b


def _posted_by(body: dict[str, Any], org: str) -> Envelope[Message]:
    return f.envelope(NeedPosted(need_id=uuid.uuid4(), need=NeedSpec.model_validate(body)), org=org)


def test_contested_money_goes_round_robin_across_communities() -> None:
    # community A posted three comparable needs before B posted one: when money arrives for
    # two, A and B get one each instead of A taking both
    a = [_posted_by(f.money_need(100_000, title=f"A{i}"), "community-a") for i in range(3)]
    b = _posted_by(f.money_need(100_000, title="B"), "community-b")
    opened, gift = fund_with(200_000)
    matches = run([opened, *a, b, gift])
    served = {m.need_id for m in matches}
    assert b.payload.need_id in served  # type: ignore[attr-defined]
    assert a[0].payload.need_id in served  # type: ignore[attr-defined]
    assert len(matches) == 2


def test_fair_rounds_never_put_a_less_urgent_need_first() -> None:
    a_critical = _posted_by(f.money_need(100_000, urgency="critical"), "community-a")
    a_critical2 = _posted_by(f.money_need(100_000, urgency="critical"), "community-a")
    b_normal = _posted_by(f.money_need(100_000, urgency="normal"), "community-b")
    opened, gift = fund_with(200_000)
    served = {m.need_id for m in run([opened, a_critical, a_critical2, b_normal, gift])}
    assert b_normal.payload.need_id not in served  # type: ignore[attr-defined]


def test_needs_due_in_different_weeks_are_not_comparable() -> None:
    # a need due next week does not take a round from one due this week
    soon = _posted_by(f.money_need(100_000, title="soon"), "community-a")
    soon2 = _posted_by(f.money_need(100_000, title="soon2"), "community-a")
    later = _posted_by(
        f.money_need(100_000, deadline=f.iso(f.T0 + timedelta(days=10))), "community-b"
    )
    opened, gift = fund_with(200_000)
    served = {m.need_id for m in run([opened, soon, soon2, later, gift])}
    assert served == {soon.payload.need_id, soon2.payload.need_id}  # type: ignore[attr-defined]


def test_a_nearer_volunteer_is_asked_before_one_from_another_district() -> None:
    far = volunteer(home={"district": "江宁区"}, travel="anywhere", pseudonym="远")
    same_district = volunteer(home={"district": "鼓楼区", "street": "宁海路街道"}, pseudonym="区")
    same_street = volunteer(pseudonym="街")
    [m] = run([far, same_district, same_street, need(f.volunteer_need(volunteers_needed=1))])
    assert m.volunteer_id == same_street.payload.volunteer_id  # type: ignore[attr-defined]
    [m] = run([far, same_district, need(f.volunteer_need(volunteers_needed=1))])
    assert m.volunteer_id == same_district.payload.volunteer_id  # type: ignore[attr-defined]


def test_time_zones_compare_as_instants() -> None:
    # the same shift written in Nanjing time (+08:00) fits availability written in UTC
    start = f.T0.astimezone(timezone(timedelta(hours=8)))
    body = f.volunteer_need(
        volunteers_needed=1,
        shift={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()},
        deadline=(start + timedelta(hours=3)).isoformat(),
    )
    assert "+08:00" in body["shift"]["start"]
    assert len(run([need(body), volunteer()])) == 1


def _two_hour_need(start: datetime) -> Envelope[Message]:
    return need(
        f.volunteer_need(
            volunteers_needed=1,
            shift={"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()},
            deadline=(start + timedelta(hours=24)).isoformat(),
        )
    )


def test_the_weekly_limit_counts_nanjing_weeks_whatever_the_offset_written() -> None:
    cst = timezone(timedelta(hours=8))
    sunday_night = datetime(2026, 12, 6, 21, 0, tzinfo=cst)  # week 49 in Nanjing
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=cst)  # week 50
    monday_dawn_utc = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)  # Sunday in UTC, Monday 05:00 here
    window = [
        {
            "start": (sunday_night - timedelta(hours=1)).isoformat(),
            "end": (monday + timedelta(hours=3)).isoformat(),
        }
    ]
    two_hours = {"availability": window, "weekly_hour_limit": 2}
    # different Nanjing weeks: both fit a 2-hour weekly limit
    assert (
        len(run([_two_hour_need(sunday_night), _two_hour_need(monday), volunteer(**two_hours)]))
        == 2
    )
    # the same Nanjing week, though one is written as a Sunday in UTC: only one fits
    assert (
        len(run([_two_hour_need(monday_dawn_utc), _two_hour_need(monday), volunteer(**two_hours)]))
        == 1
    )


GULOU = {"district": "鼓楼区", "street": "江东街道", "community": "金陵名人居"}
AT_GULOU = GULOU | {"latitude": 32.0600, "longitude": 118.7400}


def test_a_volunteer_who_stays_in_their_community_serves_only_it() -> None:
    home = {**GULOU}
    shift = f.volunteer_need(volunteers_needed=1)
    elsewhere = f.volunteer_need(
        volunteers_needed=1, place={"district": "鼓楼区", "street": "江东街道", "community": "恒山"}
    )
    assert len(run([need(shift), volunteer(home=home, travel="same_community")])) == 1
    assert run([need(elsewhere), volunteer(home=home, travel="same_community")]) == []


def test_distance_decides_when_both_places_have_coordinates() -> None:
    # about 4.4 km apart (0.03 degrees of latitude plus 0.03 of longitude at 32 N)
    place = {"district": "建邺区", "street": "兴隆街道", "latitude": 32.0300, "longitude": 118.7100}
    body = f.volunteer_need(volunteers_needed=1, place=place)
    assert len(run([need(body), volunteer(home=AT_GULOU, travel_km=5)])) == 1, "across districts"
    assert run([need(body), volunteer(home=AT_GULOU, travel_km=4)]) == [], "too far"


def test_without_the_needs_coordinates_the_travel_range_decides() -> None:
    body = f.volunteer_need(volunteers_needed=1, place={"district": "建邺区", "street": "兴隆街道"})
    assert run([need(body), volunteer(home=AT_GULOU, travel_km=50)]) == [], "same district only"
    same = f.volunteer_need(volunteers_needed=1)
    assert len(run([need(same), volunteer(home=AT_GULOU, travel_km=50)])) == 1


def test_travel_km_needs_home_coordinates() -> None:
    with pytest.raises(ValueError, match=r"travel_km needs home\.latitude"):
        PledgeSpec.model_validate(f.pledge(travel_km=5))


def test_among_equally_near_volunteers_the_closer_by_kilometres_is_asked_first() -> None:
    place = GULOU | {"latitude": 32.0600, "longitude": 118.7400}
    body = f.volunteer_need(volunteers_needed=1, place=place)
    farther = volunteer(
        home=GULOU | {"latitude": 32.0900, "longitude": 118.7400}, pseudonym="远一点"
    )
    closer = volunteer(home=GULOU | {"latitude": 32.0610, "longitude": 118.7400}, pseudonym="近")
    [m] = run([farther, closer, need(body)])
    assert m.volunteer_id == closer.payload.volunteer_id  # type: ignore[attr-defined]
