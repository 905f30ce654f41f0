"""The fund's flow chart: donors → fund → needs, every band as wide as its money, the money
in equal to the money out, labelled in the page's language, and readable without the picture."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from services.web.i18n import Translator
from services.web.sankey import (
    MOST_NEEDS,
    Stream,
    fund_flows,
    layout,
    sankey_svg,
    sankey_table,
)

FUND = "0b0e6a8e-5f0e-4d7e-9b7e-000000000001"
NEED_A = "0b0e6a8e-5f0e-4d7e-9b7e-00000000000a"
NEED_B = "0b0e6a8e-5f0e-4d7e-9b7e-00000000000b"


def words(t: Translator) -> dict[str, str]:
    keys = ("others", "other_needs", "refunded", "available", "unknown_need")
    return {k: t(f"sankey.{k}") for k in keys}


def kinds(t: Translator) -> dict[str, str]:
    return {
        k: t(f"sankey.kind.{k}")
        for k in ("donor", "disbursed", "reserved", "refunded", "available")
    }


def gift(amount: int, donor: str | None) -> dict[str, object]:
    return {
        "event_type": "DonationReceived",
        "account": f"fund:{FUND}:available",
        "amount_minor": amount,
        "donor": donor,
    }


def match(need: str, amount: int, status: str, fund: str = FUND) -> dict[str, object]:
    return {
        "need_id": need,
        "fund_id": fund,
        "status": status,
        "amount": {"amount_minor": amount, "currency": "CNY"},
    }


HISTORY = [
    gift(500_000, "玄武区爱心企业联合会"),
    {"event_type": "DonationReceived", "account": f"donors:{FUND}", "amount_minor": -500_000},
    gift(300_000, None),  # a person: never named
    gift(20_000, None),
    {"event_type": "DonationRefunded", "account": f"fund:{FUND}:available", "amount_minor": -5_000},
    {"event_type": "FundsReserved", "account": f"fund:{FUND}:available", "amount_minor": -40_000},
]
MATCHES = [
    match(NEED_A, 30_000, "completed"),
    match(NEED_B, 10_000, "accepted"),
    match(NEED_B, 7_000, "declined"),  # ended: holds nothing
    match(NEED_A, 99_999, "completed", fund="another fund"),
]
TITLES = {NEED_A: "助餐补贴", NEED_B: "冬季棉被"}


def test_given_gifts_refunds_and_matches_when_read_then_money_in_is_money_out() -> None:
    t = Translator("zh-CN")
    donors, out = fund_flows(HISTORY, MATCHES, TITLES, FUND, words(t))
    assert sorted((s.label, s.amount_minor) for s in donors) == [
        ("个人及其他捐赠者", 320_000),
        ("玄武区爱心企业联合会", 500_000),
    ]
    assert [(s.label, s.amount_minor, s.kind) for s in out] == [
        ("冬季棉被", 10_000, "reserved"),
        ("助餐补贴", 30_000, "disbursed"),
        ("已退回捐赠人", 5_000, "refunded"),
        ("仍可使用", 775_000, "available"),
    ]
    assert sum(s.amount_minor for s in donors) == sum(s.amount_minor for s in out)


def test_band_widths_are_proportional_to_fen_and_conserved_at_the_fund() -> None:
    donors, out = fund_flows(HISTORY, MATCHES, TITLES, FUND, words(Translator("en")))
    chart = layout(donors, out, "Fund")
    for band in chart.bands:
        assert band.width == pytest.approx(band.amount_minor * chart.per_fen)
    into = [b for b in chart.bands if b.kind == "donor"]
    away = [b for b in chart.bands if b.kind != "donor"]
    assert sum(b.width for b in into) == pytest.approx(chart.fund.h)
    assert sum(b.width for b in away) == pytest.approx(chart.fund.h)
    # bands leave the fund stacked, edge to edge, top to bottom
    assert into[0].y1 == pytest.approx(chart.fund.y)
    for a, b in pairwise(away):
        assert b.y0 == pytest.approx(a.y0 + a.width)
    for box in chart.sources + chart.targets:
        assert box.h == pytest.approx(box.amount_minor * chart.per_fen)
        assert box.slot_h >= box.h


def test_money_that_does_not_add_up_is_refused_not_drawn() -> None:
    with pytest.raises(ValueError, match="not conserved"):
        layout([Stream("a", 100, "donor")], [Stream("b", 99, "available")], "F")
    with pytest.raises(ValueError):
        layout([], [], "F")


def test_a_need_with_money_in_two_states_is_one_box_with_two_bands() -> None:
    out = [Stream("助餐", 30, "disbursed"), Stream("助餐", 20, "reserved")]
    chart = layout([Stream("捐赠人", 50, "donor")], out, "F")
    assert [b.label for b in chart.targets] == ["助餐"]
    assert chart.targets[0].kinds == ("disbursed", "reserved")
    assert len([b for b in chart.bands if b.label == "助餐"]) == 2


def test_many_needs_beyond_the_most_are_drawn_together() -> None:
    matches = [match(f"n{i}", 1_000 + i, "completed") for i in range(MOST_NEEDS + 3)]
    titles = {f"n{i}": f"需求{i}" for i in range(MOST_NEEDS + 3)}
    history = [gift(100_000, None)]
    _, out = fund_flows(history, matches, titles, FUND, words(Translator("zh-CN")))
    labels = [s.label for s in out]
    assert "其他需求" in labels and "需求0" not in labels and "需求10" in labels
    assert len(labels) == MOST_NEEDS + 1 + 1  # the largest, the rest together, available


@pytest.mark.parametrize(
    ("lang", "others", "state"),
    [("zh-CN", "个人及其他捐赠者", "已拨付"), ("en", "Individual and other donors", "paid")],
)
def test_the_chart_speaks_the_pages_language_and_says_what_it_shows(
    lang: str, others: str, state: str
) -> None:
    t = Translator(lang)
    donors, out = fund_flows(HISTORY, MATCHES, TITLES, FUND, words(t))
    chart = layout(donors, out, "<银发>基金")
    svg = str(sankey_svg(chart, t("sankey.title", name="<银发>基金"), kinds(t), t.money))
    assert 'role="img"' in svg and 'aria-labelledby="sankey-title sankey-desc"' in svg
    assert re.search(r'<title id="sankey-title">[^<]*&lt;银发&gt;基金', svg)
    assert others in svg and state in svg and "¥3,200.00" in svg
    assert "<银发>" not in svg  # escaped everywhere
    table = str(
        sankey_table(
            chart,
            t("sankey.table"),
            [t("sankey.from"), t("sankey.to"), t("sankey.amount"), t("sankey.state")],
            kinds(t),
            t.money,
        )
    )
    assert table.count("<tr>") == 1 + len(chart.bands)
    assert '<th scope="col">' in table and "<caption>" in table
    assert "¥300.00" in table and state in table
