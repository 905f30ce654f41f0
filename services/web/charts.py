"""Charts drawn on the server as SVG: pure functions of the data, no JavaScript, no library.

Why SVG from Python rather than a charting library in the browser: the pages must load nothing
from elsewhere and CI machines have no Node.js to install a library from npm; an SVG is
readable without scripts, prints, scales on a phone, and carries its own text alternative
(`<title>`, `<desc>`) for screen readers. Amounts are integer fen throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 88, 16, 16, 36
SERIES = ("available", "reserved", "disbursed")
COLOURS = {"available": "#0b5394", "reserved": "#b45f06", "disbursed": "#38761d"}
"""Each at least 4.5:1 against white, and told apart by a dash pattern too, not colour alone."""
DASHES = {"available": "", "reserved": "6 4", "disbursed": "2 3"}


@dataclass(frozen=True)
class Point:
    """The fund's three balances after one event (the event's archive sequence)."""

    seq: int
    balances: Mapping[str, int]


def balances_over_time(history: Iterable[Mapping[str, object]], fund_id: str) -> list[Point]:
    """Running balances of the fund's accounts, one point per event, from its journal lines
    (`GET /v1/funds/{id}/history`). Lines of other funds' accounts are ignored."""
    running = dict.fromkeys(SERIES, 0)
    points: list[Point] = [Point(0, dict(running))]  # the fund as opened: nothing in it
    for line in history:
        account = str(line.get("account", ""))
        if fund_id not in account:
            continue
        name = account.rsplit(":", 1)[-1]
        if name not in running:
            continue
        running[name] += int(str(line.get("amount_minor", 0)))
        seq = int(str(line.get("seq", 0)))
        if points[-1].seq == seq:
            points[-1] = Point(seq, dict(running))
        else:
            points.append(Point(seq, dict(running)))
    return points if len(points) > 1 else []


def balance_chart(
    points: list[Point],
    title: str,
    labels: Mapping[str, str],
    money: Callable[[int], str],
) -> Markup:
    """A step chart of the three balances, event by event, with its own text alternative."""
    if not points:
        return Markup("")
    top = max(max(p.balances.values()) for p in points) or 1
    n = len(points)

    def x(i: int) -> float:
        inner = WIDTH - PAD_LEFT - PAD_RIGHT
        return PAD_LEFT + (inner * i / (n - 1) if n > 1 else inner / 2)

    def y(v: int) -> float:
        return PAD_TOP + (HEIGHT - PAD_TOP - PAD_BOTTOM) * (1 - v / top)

    last = points[-1].balances
    desc = "; ".join(f"{labels[s]} {money(last[s])}" for s in SERIES)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
    ]
    for v in (0, top // 2, top):  # gridlines with their amounts
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"'
            ' stroke="#c8ccd2" stroke-width="1"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="12"'
            f' fill="#1a1a1a">{escape(money(v))}</text>'
        )
    for s in SERIES:
        path = []
        for i, p in enumerate(points):
            value = p.balances[s]
            if i == 0:
                path.append(f"M{x(i):.1f},{y(value):.1f}")
            else:  # a step: the balance holds until the next event changes it
                path.append(f"H{x(i):.1f}V{y(value):.1f}")
        dash = f' stroke-dasharray="{DASHES[s]}"' if DASHES[s] else ""
        parts.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{COLOURS[s]}" stroke-width="2.5"'
            f"{dash}/>"
        )
    for i, s in enumerate(SERIES):  # the legend, under the plot
        lx = PAD_LEFT + i * 170
        ly = HEIGHT - 10
        dash = f' stroke-dasharray="{DASHES[s]}"' if DASHES[s] else ""
        parts.append(
            f'<line x1="{lx}" x2="{lx + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{COLOURS[s]}"'
            f' stroke-width="2.5"{dash}/>'
            f'<text x="{lx + 34}" y="{ly}" font-size="12" fill="#1a1a1a">{escape(labels[s])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    rows: list[tuple[str, int]], title: str, money: Callable[[int], str], ident: str
) -> Markup:
    """Horizontal bars, largest first, each labelled with its name and amount (the text is
    the data: nothing is conveyed by length alone)."""
    rows = sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])
    if not rows:
        return Markup("")
    top = rows[0][1]
    bar_h, gap, label_w, heading = 26, 10, 150, 28
    height = PAD_TOP + heading + len(rows) * (bar_h + gap)
    inner = WIDTH - label_w - PAD_RIGHT - 110
    desc = "; ".join(f"{name} {money(v)}" for name, v in rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img"'
        f' aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<text x="0" y="{PAD_TOP + 6}" font-size="15" font-weight="700" fill="#1a1a1a"'
        f' aria-hidden="true">{escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(rows):
        y = PAD_TOP + heading + i * (bar_h + gap)
        w = max(2.0, inner * value / top)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" font-size="13"'
            f' fill="#1a1a1a">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#0b5394"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}" font-size="13"'
            f' fill="#1a1a1a">{escape(money(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
