"""Weekly needs: one posting stands for several needs, a week apart, each an ordinary need."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.messages import MatchProposed, NeedPosted, PledgeMade, PostNeed, Recurrence
from schemas.specs import NeedSpec, PledgeSpec
from services.domain.intake import IntakeState, decide
from services.domain.matching import MatcherState, apply
from services.domain.needs import occurrences
from tests import factories as f

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))


def weekly(weeks: int, **over: object) -> PostNeed:
    return PostNeed(
        need_id=uuid.uuid4(),
        need=NeedSpec.model_validate(f.volunteer_need(**over)),
        repeat=Recurrence(weeks=weeks),
    )


def test_a_weekly_need_whose_last_occurrence_falls_in_2100_is_no_posting() -> None:
    # the intake service builds every occurrence; one past Moment's window used to fail there
    last_week = f.T0.replace(year=2099, month=12, day=20)
    shift = {"start": f.iso(last_week - timedelta(hours=3)), "end": f.iso(last_week)}
    over = {"deadline": f.iso(last_week), "shift": shift}
    with pytest.raises(ValidationError, match="2100"):
        weekly(3, **over)
    assert weekly(2, **over).repeat == Recurrence(weeks=2)


def test_occurrences_are_a_week_apart_at_the_same_nanjing_time() -> None:
    cmd = weekly(4)
    found = occurrences(cmd.need_id, cmd.need, 4)
    assert found[0][0] == cmd.need_id
    assert len({nid for nid, _ in found}) == 4
    for k, (_, spec) in enumerate(found):
        assert spec.shift is not None and cmd.need.shift is not None
        assert spec.shift.start - cmd.need.shift.start == timedelta(weeks=k)
        assert spec.deadline - cmd.need.deadline == timedelta(weeks=k)
        local = spec.shift.start.astimezone(CST)
        first = cmd.need.shift.start.astimezone(CST)
        assert (local.hour, local.minute, local.weekday()) == (
            first.hour,
            first.minute,
            first.weekday(),
        )
    assert occurrences(cmd.need_id, cmd.need, 4) == found, "the same ids every time"


def test_a_weekly_posting_is_decided_into_one_need_per_week_and_once_only() -> None:
    cmd = weekly(3)
    posting = f.envelope(cmd)
    state = IntakeState()
    events = decide(state, posting)
    assert [type(e.payload) for e in events] == [NeedPosted] * 3
    expected = [nid for nid, _ in occurrences(cmd.need_id, cmd.need, 3)]
    assert [e.payload.need_id for e in events] == expected  # type: ignore[attr-defined]
    assert all(e.causation_id == posting.event_id for e in events), "traceable to the posting"
    assert len({e.event_id for e in events}) == 3
    assert decide(state, posting) == [], "a redelivered posting decides nothing"
    again = decide(IntakeState(), posting)
    assert [e.event_id for e in again] == [e.event_id for e in events], "replay: same ids"


def test_recurrence_is_bounded() -> None:
    with pytest.raises(ValidationError, match="weeks"):
        Recurrence(weeks=1)
    with pytest.raises(ValidationError, match="weeks"):
        Recurrence(weeks=53)


def test_a_first_version_post_need_reads_as_a_one_off_need() -> None:
    cmd = PostNeed(need_id=uuid.uuid4(), need=NeedSpec.model_validate(f.volunteer_need()))
    stored = encode(f.envelope(cmd)).replace(b'"schema_version":2', b'"schema_version":1')
    stored = stored.replace(b',"repeat":null', b"")
    assert b'"repeat"' not in stored
    event = decode(stored)
    assert isinstance(event.payload, PostNeed) and event.payload.repeat is None


def test_one_volunteer_can_serve_every_week_of_a_weekly_need_within_a_weekly_limit() -> None:
    cmd = weekly(3, volunteers_needed=1)
    posted = decide(IntakeState(), f.envelope(cmd))
    assert cmd.need.shift is not None
    window = {
        "start": f.iso(cmd.need.shift.start - timedelta(hours=1)),
        "end": f.iso(cmd.need.shift.end + timedelta(weeks=3)),
    }
    pledge = PledgeSpec.model_validate(f.pledge(availability=[window], weekly_hour_limit=2))
    state = MatcherState()
    decisions = [d for e in posted for d in apply(state, e)]
    decisions += apply(state, f.envelope(PledgeMade(volunteer_id=uuid.uuid4(), pledge=pledge)))
    proposals = [d.payload for d in decisions if isinstance(d.payload, MatchProposed)]
    assert len(proposals) == 3, "two hours a week, three different weeks"
