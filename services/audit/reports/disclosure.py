"""`exchange audit disclosure`: a fund's quarterly public report (慈善中国 periodic disclosure).

What it holds: opening and closing balances; income (organisation donors by name, every other
donor together as a count and a total); refunds; spending by purpose (category) and district
with the people served; corrections, listed separately as correction notes (the figures stay
as recorded: corrections are notes, not edits). What it never holds: donor labels that are not
a registered organisation's name (a label may be a person's name, so it is personal data unless
we know it names an organisation), volunteer ids or pseudonyms, need titles or descriptions
(they may describe beneficiaries), correction replacement values other than amounts.

Quarters are calendar quarters in China Standard Time (UTC+8, no daylight saving), compared
with each event's `recorded_at`. No I/O here.
"""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from schemas.messages import EventCorrected
from services.audit.reports.asof import yuan
from services.audit.reports.books import Books
from services.domain.fund_reserve import held_for_urgent

CST = timezone(timedelta(hours=8), "CST")

OTHER_DONORS = "个人及其他捐赠者（含匿名） Individual and other donors (incl. anonymous)"


QUARTER_PATTERN = r"^(20\d\d)Q([1-4])$"
"""A quarter of 2000–2099: the years every date on the wire falls in (`schemas.common.Moment`).
Year 0 or 10000 cannot even be a Python date."""


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """`2026Q4` -> [2026-10-01 00:00 CST, 2027-01-01 00:00 CST)."""
    m = re.fullmatch(QUARTER_PATTERN, quarter)
    if m is None:
        raise ValueError(f"quarter must look like 2026Q4, in 2000–2099, not {quarter!r}")
    year, q = int(m.group(1)), int(m.group(2))
    start = datetime(year, 3 * q - 2, 1, tzinfo=CST)
    end = (
        datetime(year + 1, 1, 1, tzinfo=CST) if q == 4 else datetime(year, 3 * q + 1, 1, tzinfo=CST)
    )
    return start, end


@dataclass(frozen=True)
class Line:
    """One figure of the report."""

    section: str
    label: str
    category: str = ""
    district: str = ""
    count: int = 0
    amount_minor: int = 0
    people_served: int = 0
    note: str = ""


@dataclass
class Disclosure:
    """A fund's report for one quarter."""

    fund_id: uuid.UUID
    fund_name: str
    foundation: str
    currency: str
    quarter: str
    start: datetime
    end: datetime
    lines: list[Line] = field(default_factory=list)
    urgent_reserve_percent: int = 0
    """The share of net donations held back for high and critical needs at the quarter's end
    (the foundation's own setting); when above 0, a closing line says how much of what is
    available it holds (`held_for_urgent`)."""


def disclosure(opening: Books, closing: Books, fund_id: uuid.UUID, quarter: str) -> Disclosure:
    """The report from the books before the quarter (`opening`) and at its end (`closing`)."""
    start, end = quarter_bounds(quarter)
    f = closing.funds[fund_id]
    rep = Disclosure(
        fund_id, f.name, str(f.spec.get("foundation", "")), f.currency, quarter, start, end
    )
    add = rep.lines.append

    def within(at: datetime | None) -> bool:
        return at is not None and start <= at < end

    before = opening.fund_balances(fund_id) if fund_id in opening.funds else {}
    after = closing.fund_balances(fund_id)
    for bucket in ("available", "reserved", "disbursed"):
        add(Line("opening", bucket, amount_minor=before.get(bucket, 0)))
    orgs = set(closing.organisations.values())
    named: dict[str, Line] = {}
    others = Line("income", OTHER_DONORS)
    for d in sorted(closing.donations.values(), key=lambda d: d.received):
        if d.fund_id != fund_id or not within(d.received_at):
            continue
        if not d.donor_sealed and d.donor in orgs:
            old = named.get(d.donor, Line("income", d.donor, note="organisation"))
            named[d.donor] = Line(
                "income",
                d.donor,
                count=old.count + 1,
                amount_minor=old.amount_minor + d.amount_minor,
                note="organisation",
            )
        else:
            others = Line(
                "income",
                OTHER_DONORS,
                count=others.count + 1,
                amount_minor=others.amount_minor + d.amount_minor,
            )
    rep.lines += list(named.values()) + ([others] if others.count else [])
    refunds = [
        (opening_d, d)
        for d in closing.donations.values()
        if d.fund_id == fund_id
        for opening_d in [opening.donations.get(d.donation_id)]
        if d.refunded_minor > (opening_d.refunded_minor if opening_d else 0)
    ]
    if refunds:
        total = sum(d.refunded_minor - (o.refunded_minor if o else 0) for o, d in refunds)
        add(Line("refunds", "退款 Refunds to donors", count=len(refunds), amount_minor=total))
    spend: dict[tuple[str, str], tuple[int, int, set[uuid.UUID]]] = {}
    for m in closing.matches.values():
        if m.terms.fund_id != fund_id or m.status != "completed" or not within(m.settled_at):
            continue
        need = closing.needs[m.need_id]
        key = (need.category, need.district)
        n, amount, needs = spend.get(key, (0, 0, set()))
        spend[key] = (n + 1, amount + (m.terms.amount_minor or 0), needs | {m.need_id})
    for (cat, district), (n, amount, needs) in sorted(spend.items()):
        served = sum(closing.needs[x].people_served for x in needs)
        add(Line("spending", cat, cat, district, n, amount, served))
    for bucket in ("available", "reserved", "disbursed"):
        add(Line("closing", bucket, amount_minor=after[bucket]))
    rep.urgent_reserve_percent = f.urgent_reserve_percent
    if f.urgent_reserve_percent:
        net = after["available"] + after["reserved"] + after["disbursed"]
        held = held_for_urgent(net, after["available"], f.urgent_reserve_percent)
        note = f"{f.urgent_reserve_percent} % of net donations, part of available"
        add(Line("closing", "held_for_urgent", amount_minor=held, note=note))
    for c in closing.corrections:
        if within(c.recorded_at) and _about_fund(closing, c.payload, fund_id):
            assert isinstance(c.payload, EventCorrected)
            add(
                Line(
                    "corrections",
                    c.payload.corrects_event_type,
                    note=f"{c.recorded_at.astimezone(CST).date()} {c.payload.reason}"
                    f" ({_changed(closing, c.payload)}; corrects {c.payload.corrects_event_id})",
                )
            )
    return rep


def _about_fund(books: Books, p: object, fund_id: uuid.UUID) -> bool:
    assert isinstance(p, EventCorrected)
    return str(p.replacement.get("fund_id")) == str(fund_id)


def _changed(books: Books, p: EventCorrected) -> str:
    """The corrected fields by path; only amounts (never personal data) with their values."""
    old = _original(books, p)
    out = []
    for path, new in _flatten(p.replacement):
        was = old.get(path)
        if was == new:
            continue
        out.append(f"{path}: {was} → {new}" if path.endswith("amount_minor") else path)
    return ", ".join(out) or "no field changed"


def _original(books: Books, p: EventCorrected) -> dict[str, object]:
    for d in books.donations.values():
        if d.event_id == p.corrects_event_id:
            return {"donation.amount.amount_minor": d.amount_minor, "fund_id": str(d.fund_id)}
    return {}


def _flatten(value: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        out: list[tuple[str, object]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]


CSV_HEADER = [
    "section",
    "label",
    "category",
    "district",
    "count",
    "amount_minor",
    "amount_yuan",
    "currency",
    "people_served",
    "note",
]


def to_csv(rep: Disclosure) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens the Chinese text correctly."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for line in rep.lines:
        w.writerow(
            [
                line.section,
                line.label,
                line.category,
                line.district,
                line.count,
                line.amount_minor,
                yuan(line.amount_minor),
                rep.currency,
                line.people_served,
                line.note,
            ]
        )
    return buf.getvalue().encode("utf-8-sig")


SECTIONS = {
    "opening": "期初余额 Opening balance",
    "income": "收入 Income",
    "refunds": "退款 Refunds",
    "spending": "支出（按用途与区） Spending by purpose and district",
    "closing": "期末余额 Closing balance",
    "corrections": "更正说明 Correction notes",
}


def to_html(rep: Disclosure) -> str:
    """A self-contained page (UTF-8, no scripts, no external resources)."""
    e = html.escape
    period = f"{rep.start.date()} – {(rep.end - timedelta(days=1)).date()} (UTC+8)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{e(rep.fund_name)} {e(rep.quarter)} 信息公开 Disclosure</title></head><body>",
        f"<h1>{e(rep.fund_name)} — {e(rep.quarter)} 定期信息公开 Periodic disclosure</h1>",
        f"<p>{e(rep.foundation)} · {e(period)} · {e(rep.currency)}</p>",
        f"<p>为紧急需求保留 Held for urgent needs: {rep.urgent_reserve_percent} %</p>",
    ]
    for section, title in SECTIONS.items():
        lines = [x for x in rep.lines if x.section == section]
        parts.append(f"<h2>{e(title)}</h2>")
        if not lines:
            parts.append("<p>无 None</p>")
            continue
        parts.append(
            "<table><tr><th>项目 Item</th><th>区 District</th><th>笔数 Count</th>"
            "<th>金额 Amount</th><th>服务人数 People served</th><th>说明 Note</th></tr>"
        )
        for x in lines:
            parts.append(
                f"<tr><td>{e(x.label)}</td><td>{e(x.district)}</td><td>{x.count}</td>"
                f"<td>{e(yuan(x.amount_minor))}</td><td>{x.people_served}</td>"
                f"<td>{e(x.note)}</td></tr>"
            )
        parts.append("</table>")

    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
