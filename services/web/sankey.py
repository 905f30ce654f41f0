"""Where a fund's money came from and where it went, as a flow (Sankey) chart: donors on the
left, the fund in the middle, the needs it paid (and what was refunded or is still available)
on the right. Drawn on the server as SVG, like every chart here (services/web/charts.py).

Three pure steps, no I/O: `fund_flows` reads the API's answers into streams of money,
`layout` places boxes and bands (every band's width proportional to its fen, and the money
into the fund equal to the money out of it, or it refuses), `sankey_svg` and `sankey_table`
draw it, the table being the same numbers for whoever cannot see the picture.

Donors are named only as the API names them: an organisation by its name, every other donor
together (a label may be a person's name; docs/privacy.md). Needs are named by their title,
which every participant already reads in `GET /v1/needs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 640
FLOW_HEIGHT = 220
"""Pixels the whole of the fund's money spans: every band is its share of this."""
NODE_WIDTH = 14
SLOT = 40
"""The least height a box's place takes, so its two lines of label fit however little it is."""
GAP = 8
PAD_TOP = 30
PAD_BOTTOM = 8
MOST_DONORS = 6
MOST_NEEDS = 8
"""Beyond these, the smallest are drawn together as one box (the table lists them all)."""

KINDS = ("donor", "disbursed", "reserved", "refunded", "available")
COLOURS = {
    "donor": "#0b5394",
    "disbursed": "#38761d",
    "reserved": "#b45f06",
    "refunded": "#a50e0e",
    "available": "#5b6770",
}
"""Box colours, each at least 4.5:1 against white; bands are the same colours, lightened. A
box's kind is also written in its label: nothing is told by colour alone."""
LIVE = {"proposed": "reserved", "accepted": "reserved", "completed": "disbursed"}
"""A match's status → what its money is to the need (ended matches hold none)."""


@dataclass(frozen=True)
class Stream:
    """Money between the fund and one party: `label` gave it (into the fund) or received it
    (out of it), `kind` says which way and in what state (KINDS)."""

    label: str
    amount_minor: int
    kind: str


@dataclass(frozen=True)
class Box:
    """A node: its label, the money through it, and where it is drawn (`h` ∝ money)."""

    label: str
    amount_minor: int
    kinds: tuple[str, ...]
    x: float
    y: float
    h: float
    slot_y: float
    slot_h: float


@dataclass(frozen=True)
class Band:
    """One stream drawn from (x0, y0) to (x1, y1), the top edges; `width` ∝ its money."""

    label: str
    amount_minor: int
    kind: str
    x0: float
    y0: float
    x1: float
    y1: float
    width: float


@dataclass(frozen=True)
class Layout:
    """Everything placed: the donors, the fund, the destinations and the bands between."""

    width: int
    height: float
    sources: list[Box]
    fund: Box
    targets: list[Box]
    bands: list[Band]
    per_fen: float


def _grouped(streams: Iterable[Stream], most: int, rest: str) -> list[Stream]:
    """The `most` largest labels as they are, the smaller together under `rest`, per kind."""
    totals: dict[str, int] = {}
    for s in streams:
        totals[s.label] = totals.get(s.label, 0) + s.amount_minor
    keep = {k for k, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:most]}
    out: dict[tuple[str, str], int] = {}
    for s in streams:
        key = (s.label if s.label in keep else rest, s.kind)
        out[key] = out.get(key, 0) + s.amount_minor
    return [Stream(label, v, kind) for (label, kind), v in out.items() if v > 0]


def fund_flows(
    history: Iterable[Mapping[str, object]],
    matches: Iterable[Mapping[str, object]],
    titles: Mapping[str, str],
    fund_id: str,
    labels: Mapping[str, str],
) -> tuple[list[Stream], list[Stream]]:
    """The money into the fund (by donor) and out of it (by need, refunded, still available),
    from `GET /v1/funds/{id}/history` and the matches on the fund's money (`GET
    /v1/matches`). `titles` names each need by id; `labels` holds the words of the chart
    (keys `others`, `other_needs`, `refunded`, `available`, `unknown_need`).

    The money out is what the matches hold and what was refunded; what remains is available,
    so the two sides are equal by construction (read the matches before the history: money
    moves only from available to needs, so the remainder is never negative)."""
    account = f"fund:{fund_id}:available"
    gifts: list[Stream] = []
    refunded = 0
    for line in history:
        if str(line.get("account", "")) != account:
            continue
        amount = int(str(line.get("amount_minor", 0)))
        if line.get("event_type") == "DonationReceived" and amount > 0:
            donor = line.get("donor")
            gifts.append(Stream(str(donor) if donor else labels["others"], amount, "donor"))
        elif line.get("event_type") == "DonationRefunded":
            refunded -= amount
    to_needs: list[Stream] = []
    for m in matches:
        kind = LIVE.get(str(m.get("status")))
        amount_field = m.get("amount")
        if m.get("fund_id") != fund_id or kind is None or not isinstance(amount_field, Mapping):
            continue
        title = titles.get(str(m.get("need_id")), labels["unknown_need"])
        to_needs.append(Stream(title, int(str(amount_field.get("amount_minor", 0))), kind))
    donors = _grouped(gifts, MOST_DONORS, labels["others"])
    needs = sorted(
        _grouped(to_needs, MOST_NEEDS, labels["other_needs"]),
        key=lambda s: (s.label == labels["other_needs"], s.label, KINDS.index(s.kind)),
    )
    given = sum(s.amount_minor for s in donors)
    spent = sum(s.amount_minor for s in needs)
    out = [*needs, Stream(labels["refunded"], refunded, "refunded")]
    out.append(Stream(labels["available"], max(0, given - spent - refunded), "available"))
    return donors, [s for s in out if s.amount_minor > 0]


def layout(
    inflows: Sequence[Stream],
    outflows: Sequence[Stream],
    fund: str,
    width: int = WIDTH,
    flow_height: float = FLOW_HEIGHT,
) -> Layout:
    """Place the chart: donors left, the fund centred, destinations right (a destination
    with money in two states is one box with two bands). Every height is the money times the
    same `per_fen`; raises ValueError when the money in is not the money out, or is none."""
    total = sum(s.amount_minor for s in inflows)
    if total != sum(s.amount_minor for s in outflows):
        raise ValueError(
            f"flows not conserved: {total} in, {sum(s.amount_minor for s in outflows)} out"
        )
    if total <= 0 or any(s.amount_minor <= 0 for s in (*inflows, *outflows)):
        raise ValueError("every stream carries money, and there is some")
    per_fen = flow_height / total
    targets: dict[str, list[Stream]] = {}
    for s in outflows:
        targets.setdefault(s.label, []).append(s)

    def column(groups: list[list[Stream]], x: float) -> list[Box]:
        boxes, y = [], 0.0
        for group in groups:
            amount = sum(s.amount_minor for s in group)
            h = amount * per_fen
            slot = max(h, SLOT)
            kinds = tuple(dict.fromkeys(s.kind for s in group))
            boxes.append(Box(group[0].label, amount, kinds, x, y + (slot - h) / 2, h, y, slot))
            y += slot + GAP
        return boxes

    left = column([[s] for s in inflows], 0)
    right = column(list(targets.values()), width - NODE_WIDTH)
    tall = max(flow_height, *(b.slot_y + b.slot_h for b in left + right))

    def centred(boxes: list[Box]) -> list[Box]:
        used = boxes[-1].slot_y + boxes[-1].slot_h
        dy = PAD_TOP + (tall - used) / 2
        return [
            Box(b.label, b.amount_minor, b.kinds, b.x, b.y + dy, b.h, b.slot_y + dy, b.slot_h)
            for b in boxes
        ]

    left, right = centred(left), centred(right)
    fund_y = PAD_TOP + (tall - flow_height) / 2
    middle = Box(
        fund, total, ("fund",), (width - NODE_WIDTH) / 2, fund_y, flow_height, fund_y, flow_height
    )
    bands = []
    y = fund_y
    for s, box in zip(inflows, left, strict=True):
        w = s.amount_minor * per_fen
        bands.append(Band(s.label, s.amount_minor, s.kind, NODE_WIDTH, box.y, middle.x, y, w))
        y += w
    y = fund_y
    for box, group in zip(right, targets.values(), strict=True):
        at = box.y
        for s in group:
            w = s.amount_minor * per_fen
            bands.append(
                Band(s.label, s.amount_minor, s.kind, middle.x + NODE_WIDTH, y, box.x, at, w)
            )
            y += w
            at += w
    return Layout(width, tall + PAD_TOP + PAD_BOTTOM, left, middle, right, bands, per_fen)


def _lighter(colour: str) -> str:
    """The colour mixed 60% with white: a band under its box's own colour."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * 0.6):02x}" for c in rgb)


def _text(x: float, y: float, anchor: str, text: str, bold: bool = False) -> str:
    weight = ' font-weight="700"' if bold else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="13"{weight}'
        f' fill="#1a1a1a" stroke="#fff" stroke-width="3" paint-order="stroke">'
        f"{escape(text)}</text>"
    )


def _short(label: str, most: int = 16) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"


def sankey_svg(
    chart: Layout,
    title: str,
    kinds: Mapping[str, str],
    money: Callable[[int], str],
    ident: str = "sankey",
) -> Markup:
    """The chart as SVG with its own text alternative (`<title>`, `<desc>` listing every
    stream); `kinds` names each KIND in the page's language."""
    desc = "; ".join(f"{b.label} {money(b.amount_minor)} {kinds[b.kind]}" for b in chart.bands)
    parts = [
        f'<svg class="chart sankey" viewBox="0 0 {chart.width} {chart.height:.0f}" role="img"'
        f' aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
    ]
    for b in chart.bands:
        mid = (b.x0 + b.x1) / 2
        d = (
            f"M{b.x0:.1f},{b.y0:.2f}C{mid:.1f},{b.y0:.2f} {mid:.1f},{b.y1:.2f} {b.x1:.1f},"
            f"{b.y1:.2f}L{b.x1:.1f},{b.y1 + b.width:.2f}C{mid:.1f},{b.y1 + b.width:.2f}"
            f" {mid:.1f},{b.y0 + b.width:.2f} {b.x0:.1f},{b.y0 + b.width:.2f}Z"
        )
        parts.append(
            f'<path d="{d}" fill="{_lighter(COLOURS[b.kind])}" fill-opacity="0.85"'
            f' data-kind="{b.kind}" data-fen="{b.amount_minor}"/>'
        )
    f = chart.fund
    parts.append(
        f'<rect x="{f.x:.1f}" y="{f.y:.1f}" width="{NODE_WIDTH}" height="{f.h:.2f}"'
        ' fill="#1a1a1a"/>'
    )
    parts.append(_text(chart.width / 2, f.y - 10, "middle", _short(f.label, 30), bold=True))
    for box in chart.sources + chart.targets:
        colour = COLOURS[box.kinds[0]]
        parts.append(
            f'<rect x="{box.x:.1f}" y="{box.y:.2f}" width="{NODE_WIDTH}" height="{box.h:.2f}"'
            f' fill="{colour}" data-fen="{box.amount_minor}"/>'
        )
        left = box.x == 0
        x = NODE_WIDTH + 6 if left else box.x - 6
        anchor = "start" if left else "end"
        cy = box.slot_y + box.slot_h / 2
        states = "" if left else " " + "·".join(kinds[k] for k in box.kinds)
        parts.append(_text(x, cy - 3, anchor, _short(box.label)))
        parts.append(_text(x, cy + 13, anchor, money(box.amount_minor) + states))
    parts.append("</svg>")
    return Markup("".join(parts))


def sankey_table(
    chart: Layout,
    caption: str,
    heads: Sequence[str],
    kinds: Mapping[str, str],
    money: Callable[[int], str],
) -> Markup:
    """The chart's numbers as a table (from, to, amount, state): the same streams, in the
    same order, for screen readers, small screens and copying."""
    fund = escape(chart.fund.label)
    rows = []
    for b in chart.bands:
        src, dst = (escape(b.label), fund) if b.kind == "donor" else (fund, escape(b.label))
        rows.append(
            f'<tr><td>{src}</td><td>{dst}</td><td class="num">{escape(money(b.amount_minor))}'
            f"</td><td>{escape(kinds[b.kind])}</td></tr>"
        )
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in heads)
    return Markup(
        f'<table class="flows"><caption>{escape(caption)}</caption><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
