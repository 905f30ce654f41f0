"""The fund chart: running balances from journal lines, and an SVG that says what it shows."""

from __future__ import annotations

from services.web.charts import balance_chart, balances_over_time

FUND = "0b0e6a8e-5f0e-4d7e-9b7e-000000000001"


def line(seq: int, account: str, amount: int) -> dict[str, object]:
    return {"seq": seq, "account": f"fund:{FUND}:{account}", "amount_minor": amount}


def test_balances_run_event_by_event() -> None:
    history = [
        line(1, "available", 800_000),
        line(2, "available", -30_000),
        line(2, "reserved", 30_000),
        line(3, "reserved", -30_000),
        line(3, "disbursed", 30_000),
        {"seq": 4, "account": "fund:another:available", "amount_minor": 5},
    ]
    points = balances_over_time(history, FUND)
    assert [p.seq for p in points] == [0, 1, 2, 3]
    assert points[-1].balances == {"available": 770_000, "reserved": 0, "disbursed": 30_000}
    assert points[2].balances["reserved"] == 30_000


def test_the_chart_carries_its_text_alternative() -> None:
    points = balances_over_time([line(1, "available", 800_000)], FUND)
    labels = {"available": "可用", "reserved": "已预留", "disbursed": "已拨付"}
    svg = str(balance_chart(points, "<基金>", labels, lambda v: f"¥{v // 100}"))
    assert 'role="img"' in svg and "<title" in svg
    assert "&lt;基金&gt;" in svg  # escaped
    assert "可用 ¥8000" in svg
    assert balance_chart([], "x", labels, str) == ""
    assert balances_over_time([], FUND) == []


def test_bars_are_largest_first_and_say_their_amounts() -> None:
    from services.web.charts import bar_chart

    svg = str(bar_chart([("鼓楼区", 100), ("玄武区", 30_000), ("秦淮区", 0)], "按区", str, "d"))
    assert svg.index("玄武区") < svg.index("鼓楼区")
    assert "秦淮区" not in svg  # nothing to show for nothing
    assert 'aria-labelledby="d-title d-desc"' in svg and "玄武区 30000" in svg
    assert bar_chart([], "x", str, "e") == ""
