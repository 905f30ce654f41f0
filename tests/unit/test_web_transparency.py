"""The public site's figures: totals by district, category, fund and month, with cells behind
fewer than three needs pooled so that no single need's amount can be read or worked out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.web.transparency import (
    MIN_NEEDS,
    OTHER,
    Cell,
    DonationFact,
    FundFact,
    MatchFact,
    NeedFact,
    fund_figures,
    month_of,
    pooled,
    totals,
)

FUND = uuid.uuid4()
NOV = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
DEC = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def need(district: str, category: str = "elderly_meals", status: str = "open") -> NeedFact:
    return NeedFact(uuid.uuid4(), category, district, status)


def paid(n: NeedFact, fen: int, status: str = "completed", at: datetime = DEC) -> MatchFact:
    return MatchFact(n.need_id, FUND, fen, None, status, at if status == "completed" else None)


def served(n: NeedFact, minutes: int, at: datetime = DEC) -> MatchFact:
    return MatchFact(n.need_id, None, None, minutes, "completed", at)


def cell(name: str, needs: int) -> Cell:
    return Cell(name, {uuid.uuid4() for _ in range(needs)})


def test_small_cells_are_pooled_and_the_pool_is_never_smaller_than_three() -> None:
    # Given districts with 5, 4, 1 and 1 needs
    rows = pooled([cell("玄武区", 5), cell("鼓楼区", 4), cell("秦淮区", 1), cell("建邺区", 1)])
    # Then the two single needs are not shown alone, and their pool (2) takes the next
    # smallest district too, so that the totals minus the rest cannot single them out
    assert [(c.name, c.posted) for c in rows] == [("玄武区", 5), (OTHER, 6)]
    assert all(c.posted >= MIN_NEEDS for c in rows)
    # Nothing small: nothing pooled
    assert [c.name for c in pooled([cell("b", 3), cell("a", 3)])] == ["a", "b"]


def test_totals_by_district_category_and_month() -> None:
    xuanwu = [need("玄武区", status="fulfilled") for _ in range(3)]
    gulou = [need("鼓楼区", "elder_care", "matched") for _ in range(2)] + [
        need("鼓楼区", "elder_care")
    ]
    matches = [
        paid(xuanwu[0], 10_000, at=NOV),
        paid(xuanwu[1], 20_000),
        paid(gulou[0], 5_000, "proposed"),  # held, not paid
        paid(gulou[1], 7_000, "declined"),  # spent nothing
        served(xuanwu[2], 120),
    ]
    donations = [
        DonationFact(FUND, 100_000, 10_000, NOV),
        DonationFact(FUND, 50_000, 0, DEC),
    ]
    tot = totals(xuanwu + gulou, matches, donations)
    assert (tot.received, tot.reserved, tot.paid) == (140_000, 5_000, 30_000)
    assert (tot.posted, tot.met, tot.minutes) == (6, 5, 120)
    by_district = {
        c.name: (c.posted, c.met, c.reserved, c.paid, c.minutes) for c in tot.by_district
    }
    assert by_district == {"玄武区": (3, 3, 0, 30_000, 120), "鼓楼区": (3, 2, 5_000, 0, 0)}
    assert {c.name for c in tot.by_category} == {"elderly_meals", "elder_care"}
    assert [(m.month, m.received, m.paid, m.minutes) for m in tot.months] == [
        ("2026-11", 100_000, 10_000, 0),
        ("2026-12", 50_000, 20_000, 120),
    ]


def test_with_fewer_than_three_needs_nothing_is_shown() -> None:
    one = need("玄武区")
    tot = totals([one], [paid(one, 10_000)], [DonationFact(FUND, 10_000, 0, DEC)])
    assert tot.withheld and tot.paid == 0 and tot.by_district == []


def test_a_fund_shows_what_it_received_and_paid_for() -> None:
    fund = FundFact(
        FUND, "银发助餐基金", "玄武区慈善基金会", "CNY", ("elderly_meals",), ("玄武区",), None, None
    )
    mine = [need("玄武区") for _ in range(3)]
    elsewhere = need("鼓楼区")
    other_fund = MatchFact(elsewhere.need_id, uuid.uuid4(), 9_999, None, "completed", DEC)
    matches = [paid(mine[0], 10_000), paid(mine[1], 20_000), paid(mine[2], 3_000, "accepted")]
    fig = fund_figures(
        fund,
        [*mine, elsewhere],
        [*matches, other_fund],
        [DonationFact(FUND, 80_000, 5_000, DEC), DonationFact(uuid.uuid4(), 1, 0, DEC)],
    )
    assert (fig.received, fig.refunded, fig.reserved, fig.paid) == (80_000, 5_000, 3_000, 30_000)
    assert [(c.name, c.posted, c.paid) for c in fig.by_district] == [("玄武区", 3, 30_000)]
    assert [(c.name, c.reserved) for c in fig.by_category] == [("elderly_meals", 3_000)]


def test_months_are_nanjing_months() -> None:
    # 2026-11-30 17:00 UTC is already December 1st in Nanjing
    assert month_of(datetime(2026, 11, 30, 17, 0, tzinfo=UTC)) == "2026-12"
