"""A volunteer's page: hours served this year (Nanjing's calendar, confirmed minutes only),
and their shifts split into what is coming and what is past."""

from __future__ import annotations

from datetime import UTC, datetime

from services.web.shifts import hours, minutes_served, minutes_this_year, upcoming_and_past


def done(at: str, served: int, planned: int = 120) -> dict[str, object]:
    return {"status": "completed", "completed_at": at, "minutes_served": served, "minutes": planned}


def test_given_shifts_around_new_year_in_nanjing_then_only_this_years_count() -> None:
    matches = [
        done("2026-12-31T15:30:00+00:00", 60),  # 23:30 on 31 December in Nanjing: last year
        done("2026-12-31T16:30:00+00:00", 90),  # 00:30 on 1 January in Nanjing: this year
        done("2027-03-01T10:00:00+08:00", 45, planned=120),  # confirmed 45, not the 120 planned
        {"status": "accepted", "completed_at": None, "minutes_served": None, "minutes": 120},
        {"status": "no_show", "completed_at": None, "minutes_served": None, "minutes": 120},
    ]
    now = datetime(2027, 6, 1, tzinfo=UTC)
    assert minutes_this_year(matches, now) == 135
    assert minutes_served(matches) == 195
    # on 31 December 17:00 UTC it is already 2027 in Nanjing
    assert minutes_this_year(matches, datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == 135


def test_hours_have_one_decimal_rounded_half_up() -> None:
    assert [hours(m) for m in (0, 45, 135, 59, 3)] == ["0.0", "0.8", "2.3", "1.0", "0.1"]


def test_upcoming_are_accepted_shifts_not_yet_over_soonest_first() -> None:
    def shift(status: str, start: str, end: str) -> dict[str, object]:
        return {"status": status, "shift": {"start": start, "end": end}}

    later = shift("accepted", "2027-06-09T10:00:00+08:00", "2027-06-09T12:00:00+08:00")
    sooner = shift("accepted", "2027-06-02T10:00:00+08:00", "2027-06-02T12:00:00+08:00")
    over = shift("accepted", "2027-05-02T10:00:00+08:00", "2027-05-02T12:00:00+08:00")
    served = shift("completed", "2027-05-20T10:00:00+08:00", "2027-05-20T12:00:00+08:00")
    asked = shift("proposed", "2027-06-03T10:00:00+08:00", "2027-06-03T12:00:00+08:00")
    coming, past = upcoming_and_past(
        [later, over, asked, served, sooner], datetime(2027, 6, 1, tzinfo=UTC)
    )
    assert coming == [sooner, later]
    assert past == [served, over]
