"""The pure parts of the audit reports: hour lines balance, sequence rules, quarters, yuan."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from services.audit.reports.asof import yuan
from services.audit.reports.disclosure import CST, quarter_bounds
from services.domain.projections import (
    MatchDelivered,
    MatchEnded,
    MatchTerms,
    match_lines,
    pledge_lines,
    withdrawal_lines,
)
from services.ledger.sequences import Seen, check_all, is_sequenced

pytestmark = pytest.mark.unit
V = uuid.uuid4()
SHIFT = MatchTerms("volunteer", None, None, None, V, 120)


@pytest.mark.parametrize(
    "lines",
    [
        match_lines(SHIFT, MatchEnded(uuid.uuid4(), "declined")),
        match_lines(SHIFT, MatchDelivered(uuid.uuid4(), 90)),
        match_lines(SHIFT, MatchDelivered(uuid.uuid4(), 150)),
        pledge_lines(V, 300, 180),
        withdrawal_lines(V, 200, 300),
    ],
)
def test_every_hour_entry_balances(lines: list) -> None:  # type: ignore[type-arg]
    assert lines and sum(x.amount_minor for x in lines) == 0
    assert {x.currency for x in lines} == {"MIN"}


def test_a_short_shift_returns_the_unserved_minutes_to_offered() -> None:
    got = {
        x.account.split(":")[-1]: x.amount_minor
        for x in match_lines(SHIFT, MatchDelivered(uuid.uuid4(), 90))
    }
    assert got == {"reserved": -120, "served": 90, "offered": 30}


def seen(stream: str, seq: int, n: int) -> Seen:
    return Seen(uuid.uuid4(), "NeedPosted", stream, seq, n, "needs.events")


def test_sequence_rules() -> None:
    assert not is_sequenced("clock", 0, "ClockTicked", "matcher.inputs")
    assert not is_sequenced(
        "dead-letters:needs.postings", 0, "MessageDeadLettered", "needs.postings.dlq"
    )
    assert not is_sequenced("listing:x:1", 7, "SupplyListed", "matcher.inputs")
    assert not is_sequenced("match:x", 1, "PostingRefused", "matches.events")
    assert is_sequenced("need:x", 1, "NeedPosted", "needs.events")
    # a copy on another topic (matcher.inputs repeats intake events) is not checked: the
    # ledger reads topics side by side, so a copy may come before its predecessor's home copy
    assert not is_sequenced("need:x", 1, "NeedPosted", "matcher.inputs")
    assert is_sequenced("volunteer:v", 2, "PledgeMade", "volunteers.events")
    assert not is_sequenced("volunteer:v", 2, "PledgeMade", "matcher.inputs")
    last, found = check_all(
        [seen("need:a", 1, 1), seen("need:a", 3, 2), seen("need:a", 3, 3), seen("need:b", 2, 4)]
    )
    assert last == {"need:a": 3, "need:b": 2}
    assert [(a.kind, a.expected_seq, a.seen.stream_seq) for a in found] == [
        ("gap", 2, 3),
        ("repeat", 4, 3),
        ("gap", 1, 2),
    ]


def test_quarters_are_calendar_quarters_in_china_standard_time() -> None:
    assert quarter_bounds("2026Q4") == (
        datetime(2026, 10, 1, tzinfo=CST),
        datetime(2027, 1, 1, tzinfo=CST),
    )
    assert quarter_bounds("2027Q1")[1] == datetime(2027, 4, 1, tzinfo=CST)
    for outside in ("2026Q5", "0000Q1", "1999Q4", "2100Q1", "9999Q4"):  # year 0: no date
        with pytest.raises(ValueError):
            quarter_bounds(outside)


def test_yuan_is_exact() -> None:
    assert (yuan(123_456_789), yuan(5), yuan(-100)) == ("1,234,567.89", "0.05", "-1.00")


def test_the_disclosure_names_only_plain_organisation_labels_never_a_sealed_one() -> None:
    """A sealed donor label was not a registered organisation's name when posted: even opened
    to text equal to one (an organisation registered later under that name), it is counted
    with the other donors, never named (docs/privacy.md)."""
    from schemas.messages import DonationReceived, FundOpened, OrganisationRegistered
    from schemas.sealed import new_key, seal, subject_of
    from services.audit.reports.books import fold
    from services.audit.reports.disclosure import OTHER_DONORS, disclosure
    from tests import factories as f

    fund_id, org, person = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = new_key()
    label = seal("金陵名人居业主委员会", subject_of("donation", person), key)
    events = [
        f.envelope(FundOpened(fund_id=fund_id, fund=f.fund())),
        f.envelope(
            OrganisationRegistered.model_validate(
                {
                    "org_id": str(org),
                    "kind": "community",
                    "name": "金陵名人居业主委员会",
                    "district": "鼓楼区",
                }
            )
        ),
        f.envelope(DonationReceived(fund_id=fund_id, donation_id=org, donation=f.donation())),
        f.envelope(
            DonationReceived(
                fund_id=fund_id,
                donation_id=person,
                donation=f.donation(500, donor=label.model_dump()),
            )
        ),
    ]
    books = fold(events)
    books.donations[person].donor = "金陵名人居业主委员会"  # as if opened by the reader
    quarter = f"{f.T0.astimezone(CST).year}Q{(f.T0.astimezone(CST).month - 1) // 3 + 1}"
    report = disclosure(fold([]), books, fund_id, quarter)
    income = {x.label: x for x in report.lines if x.section == "income"}
    assert income["金陵名人居业主委员会"].amount_minor == 800_000
    assert income["金陵名人居业主委员会"].count == 1
    assert income[OTHER_DONORS].amount_minor == 500


def test_the_disclosure_and_the_trail_show_what_a_fund_holds_back_for_urgent_needs() -> None:
    """The foundation's share held for urgent needs, as last set, is in the quarter's report
    (a closing line: how much of what is available it holds) and each change is in the trail."""
    from schemas.messages import DonationReceived, FundOpened, FundReserveSet
    from services.audit.reports.books import fold
    from services.audit.reports.disclosure import disclosure, to_html
    from services.audit.reports.trail import trail
    from tests import factories as f

    fund_id = uuid.uuid4()
    stream = f"fund:{fund_id}"
    events = [
        f.envelope(
            FundOpened(fund_id=fund_id, fund=f.fund(), urgent_reserve_percent=75), stream=stream
        ),
        f.envelope(
            DonationReceived(fund_id=fund_id, donation_id=uuid.uuid4(), donation=f.donation()),
            stream=stream,
        ),
        f.envelope(FundReserveSet(fund_id=fund_id, urgent_reserve_percent=40), stream=stream),
    ]
    books = fold(events)
    quarter = f"{f.T0.astimezone(CST).year}Q{(f.T0.astimezone(CST).month - 1) // 3 + 1}"
    report = disclosure(fold([]), books, fund_id, quarter)
    (held,) = [x for x in report.lines if x.label == "held_for_urgent"]
    assert (held.section, held.amount_minor, report.urgent_reserve_percent) == (
        "closing",
        320_000,
        40,
    )
    assert "Held for urgent needs: 40 %" in to_html(report)
    said = [s.what for s in trail(books, events, fund=fund_id)]
    assert said[0] == "opened, holding 75 % for urgent needs"
    assert "held for urgent needs set to 40 % (from now on)" in said
