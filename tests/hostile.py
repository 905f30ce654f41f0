"""Hostile but schema-valid events: the values that once stopped the exchange (issue "one
accepted request stops everything"), and hypothesis strategies for more of their kind.

Each event is built valid and then given its hostile values in its JSON bytes, so the tests
keep testing the consumers' defence even once the gateway and schemas refuse these values
(a consumer must survive whatever bytes reach it: a posting accepted by an older gateway is
still in the log).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas.codec import encode
from schemas.envelope import Envelope
from schemas.messages import Message, NeedAmended, NeedPosted, PledgeMade
from schemas.specs import NeedSpec, PledgeSpec
from services.platform.kafka import Record, headers_for
from tests import factories as f

FAR = "9999-12-31T23:00:00-08:00"
"""A valid aware time with no UTC time a Python datetime can hold (10000-01-01T07:00Z)."""
FAR_START = "9999-12-31T10:00:00-08:00"


def patched(env: Envelope[Message], changes: dict[tuple[str, ...], Any]) -> bytes:
    """The envelope's JSON with the values at the given paths replaced."""
    doc = json.loads(encode(env))
    for path, value in changes.items():
        node = doc
        for step in path[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[path[-1]] = value
    return json.dumps(doc, ensure_ascii=False).encode()


def need_posted(need_id: uuid.UUID | None = None, **over: Any) -> Envelope[Message]:
    """A valid NeedPosted (a volunteer shift in 鼓楼区 that `pledge_made` can serve)."""
    spec = NeedSpec.model_validate(f.volunteer_need(**over))
    return f.envelope(NeedPosted(need_id=need_id or uuid.uuid4(), need=spec), org="community-1")


def pledge_made(volunteer_id: uuid.UUID | None = None, **over: Any) -> Envelope[Message]:
    """A valid PledgeMade of a volunteer in 鼓楼区 who fits `need_posted`."""
    spec = PledgeSpec.model_validate(f.pledge(**over))
    return f.envelope(PledgeMade(volunteer_id=volunteer_id or uuid.uuid4(), pledge=spec))


def later_need() -> Envelope[Message]:
    """A valid need a day after `need_posted`'s, so the volunteers of `pledge_made` cannot
    serve it: a hostile need that is harmless to the matcher never competes with valid ones."""
    day = timedelta(days=1)
    return need_posted(
        shift={"start": f.iso(f.T0 + day), "end": f.iso(f.T0 + day + timedelta(hours=2))},
        deadline=f.iso(f.T0 + day + timedelta(hours=4)),
    )


def money_posted() -> Envelope[Message]:
    """A valid money need (no shift, so any deadline is schema-valid)."""
    spec = NeedSpec.model_validate(f.money_need())
    return f.envelope(NeedPosted(need_id=uuid.uuid4(), need=spec), org="community-1")


def goods_posted() -> Envelope[Message]:
    """A valid goods need, to be given a quantity and unit cost."""
    body = {
        "title": "应急物资：大米",
        "kind": "goods",
        "category": "emergency",
        "place": {"district": "鼓楼区", "street": "江东街道"},
        "deadline": f.iso(f.T0 + timedelta(days=2)),
        "quantity": 10,
        "unit": "袋",
        "unit_cost": {"amount_minor": 5000, "currency": "CNY"},
    }
    spec = NeedSpec.model_validate(body)
    return f.envelope(NeedPosted(need_id=uuid.uuid4(), need=spec), org="community-1")


def the_four() -> list[tuple[str, Envelope[Message], bytes]]:
    """The issue's hostile inputs as the events intake makes of them: (label, envelope as
    built, hostile bytes). The amendment amends the need posted first."""
    nul = later_need()
    goods = goods_posted()
    late = need_posted()
    amended = f.envelope(
        NeedAmended(need_id=nul.payload.need_id, need=nul.payload.need, changed=["deadline"]),  # type: ignore[attr-defined]
        org="community-1",
    )
    pledge = pledge_made()
    return [
        ("nul", nul, patched(nul, {("payload", "need", "description"): "电话\u0000123"})),
        (
            "money",
            goods,
            patched(
                goods,
                {
                    ("payload", "need", "quantity"): 1_000_000,
                    ("payload", "need", "unit_cost", "amount_minor"): 10_000_000_000_000,
                },
            ),
        ),
        ("deadline", late, patched(late, {("payload", "need", "deadline"): FAR})),
        ("amended", amended, patched(amended, {("payload", "need", "deadline"): FAR})),
        (
            "availability",
            pledge,
            patched(
                pledge,
                {
                    (
                        "payload",
                        "pledge",
                        "availability",
                        "0",
                        "start",
                    ): "9999-12-31T10:00:00-08:00",
                    ("payload", "pledge", "availability", "0", "end"): FAR,
                },
            ),
        ),
    ]


def record(topic: str, env: Envelope[Message], value: bytes, offset: int, key: bytes) -> Record:
    """A record as a consumer reads it (partition 0; the consumers here do not care)."""
    return Record(topic, 0, offset, key, value, tuple(headers_for(env.event_id, env.event_type)))


# ---- strategies ----

ODD_TEXT = st.text(
    st.one_of(
        st.sampled_from(["\u0000", "\u200f", "\u202e", "\ufeff", "\u0301", "𠀀", "🧧", "\\", '"']),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=30,
)
"""Text a JSON Schema string allows: NUL, bidi controls, BOMs, combining marks, astral
characters, quotes and backslashes among the rest."""

EDGE_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)


LAST = datetime(9999, 12, 31, 23, 59)
FIRST = datetime(1, 1, 1)


@st.composite
def edge_windows(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """An aware window (1 to 48 hours) at either end of the calendar, in any offset: many
    of its instants have no UTC time."""
    zone = draw(EDGE_OFFSETS)
    hours = timedelta(hours=draw(st.integers(1, 48)))
    margin = timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    if draw(st.booleans()):
        end = (LAST - margin).replace(tzinfo=zone)
        return end - hours, end
    start = (FIRST + margin).replace(tzinfo=zone)
    return start, start + hours


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[str, Envelope[Message], bytes]:
    """One hostile NeedPosted or PledgeMade: odd text, edge dates, or goods worth too much."""
    kind = draw(st.sampled_from(["text", "deadline", "goods", "availability"]))
    if kind == "text":
        env = later_need()
        field = draw(st.sampled_from(["description", "title"]))
        return kind, env, patched(env, {("payload", "need", field): draw(ODD_TEXT)})
    if kind == "deadline":
        env = money_posted()
        deadline = draw(edge_windows())[1].isoformat()
        return kind, env, patched(env, {("payload", "need", "deadline"): deadline})
    if kind == "goods":
        env = goods_posted()
        q = draw(st.integers(1, 1_000_000))
        cost = draw(st.integers(1, 10**13))
        return (
            kind,
            env,
            patched(
                env,
                {
                    ("payload", "need", "quantity"): q,
                    ("payload", "need", "unit_cost", "amount_minor"): cost,
                },
            ),
        )
    env = pledge_made()
    start, end = (t.isoformat() for t in draw(edge_windows()))
    return (
        kind,
        env,
        patched(
            env,
            {
                ("payload", "pledge", "availability", "0", "start"): start,
                ("payload", "pledge", "availability", "0", "end"): end,
            },
        ),
    )
