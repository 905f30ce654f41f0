"""The matcher's shortcuts against the plain rules they replace: each must choose exactly as the
rule does (the recorded digests guard whole cities; these reach the corners a city may not)."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import timedelta

import pytest

from schemas.envelope import Envelope
from schemas.messages import (
    DeclineMatch,
    MatchProposed,
    Message,
    NeedAmended,
    NeedPosted,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
)
from schemas.specs import NeedSpec, PledgeSpec
from services.domain.matching import MatcherState, apply
from services.domain.matching.serve import fair_order, fair_order_among
from services.domain.matching.state import OpenNeed
from services.domain.matching.views import PledgeView
from tests import factories as f

pytestmark = pytest.mark.unit


def _need(rng: random.Random, arrival: int) -> OpenNeed:
    body = f.volunteer_need(
        urgency=rng.choice(["low", "normal", "high", "critical"]),
        deadline=f.iso(f.T0 + timedelta(days=rng.randint(0, 20), hours=rng.randint(3, 23))),
    )
    return OpenNeed(uuid.uuid4(), NeedSpec.model_validate(body), rng.choice("abcd"), arrival, 1)


@pytest.mark.parametrize("seed", range(5))
def test_fair_order_among_a_few_is_fair_order_of_all_with_only_those_kept(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        needs = [_need(rng, a) for a in rng.sample(range(1000), rng.randint(0, 20))]
        everyone = list(needs)
        for again in rng.sample(needs, min(len(needs), 2)):  # a need on two shelves
            everyone.insert(rng.randint(0, len(everyone)), again)
        rng.shuffle(everyone)
        keep = {id(n) for n in needs if rng.random() < 0.4}
        chosen = [n for n in everyone if id(n) in keep]
        expected = [n for n in fair_order(everyone) if id(n) in keep]
        assert fair_order_among(everyone, chosen) == expected


@pytest.mark.parametrize("seed", range(5))
def test_availability_by_bisection_is_any_window_covering_the_shift(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        days = sorted(rng.sample(range(10), rng.randint(1, 4)))
        windows = []
        for day in days:
            start = f.T0 + timedelta(days=day, hours=rng.randint(0, 12))
            end = start + timedelta(hours=rng.randint(1, 30))
            if windows and start < windows[-1][1]:
                continue  # a pledge's windows never overlap
            windows.append((start, end))
        pledge = PledgeSpec.model_validate(
            f.pledge(availability=[{"start": f.iso(a), "end": f.iso(b)} for a, b in windows])
        )
        view = PledgeView.of(pledge)
        for _ in range(20):
            start = f.T0 + timedelta(hours=rng.randint(-5, 260))
            end = start + timedelta(hours=rng.randint(1, 8))
            covered = any(a <= start and end <= b for a, b in windows)
            assert view.available(start, end) == covered


CHURN_DIGEST = "86142cb23ebfb653f9bbf797c438c60aad02711c598b1efe398acfe0a40035ca"
"""Changed only by MatchDeclined's schema version (v2, 124 events) when volunteers' reasons
were sealed: with it set back to 1, the bytes give e49d38aa…71c0ffc0, the digest recorded
before (checked when the version was raised)."""


def test_pledges_made_again_amended_and_withdrawn_are_decided_as_recorded() -> None:
    """The filing by district, skill and day under churn: a volunteer pledging again after a
    withdrawal (a second record under the same id), moving district or range, long windows;
    needs amended to another district (then on two shelves) or with no skill required.
    The digest was recorded with the code before the views and indexes."""
    digest = hashlib.sha256()
    count = 0
    for seed in range(40):
        for d in _churn(random.Random(seed)):
            digest.update(d.model_dump_json().encode())
            count += 1
    assert count == 919
    assert digest.hexdigest() == CHURN_DIGEST, "the matcher decides differently than recorded"


def _churn(rng: random.Random) -> list[Envelope[Message]]:
    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128))

    districts, skills = ["鼓楼区", "玄武区"], ["driving", "meal_delivery", "first_aid", "cooking"]

    def pledge() -> PledgeSpec:
        start = f.T0 + timedelta(days=rng.randint(0, 3), hours=rng.randint(-3, 0))
        end = start + timedelta(hours=rng.randint(3, 30))
        return PledgeSpec.model_validate(
            f.pledge(
                home={"district": rng.choice(districts), "street": "江东街道"},
                skills=rng.sample(skills, rng.randint(1, 2)),
                travel=rng.choice(["same_district", "anywhere", "same_street"]),
                availability=[{"start": f.iso(start), "end": f.iso(end)}],
                weekly_hour_limit=rng.randint(2, 9),
            )
        )

    def need() -> NeedSpec:
        start = f.T0 + timedelta(days=rng.randint(0, 3), minutes=30)
        return NeedSpec.model_validate(
            f.volunteer_need(
                place={"district": rng.choice(districts), "street": "江东街道", "community": "x"},
                required_skills=rng.sample(skills, rng.randint(0, 1)),
                shift={"start": f.iso(start), "end": f.iso(start + timedelta(hours=2))},
                deadline=f.iso(start + timedelta(hours=3)),
                volunteers_needed=rng.randint(1, 3),
            )
        )

    state = MatcherState()
    volunteers = [new_id() for _ in range(6)]
    needs: list[uuid.UUID] = []
    proposals: list[MatchProposed] = []
    out: list[Envelope[Message]] = []
    at = f.T0 - timedelta(days=1)
    for _ in range(60):
        roll, vid, org = rng.random(), rng.choice(volunteers), "test-org"
        payload: Message
        if roll < 0.25:
            payload = PledgeMade(volunteer_id=vid, pledge=pledge())
        elif roll < 0.35:
            payload = PledgeAmended(volunteer_id=vid, pledge=pledge())
        elif roll < 0.45:
            payload = PledgeWithdrawn(volunteer_id=vid, reason="x")
        elif roll < 0.8:
            needs.append(new_id())
            payload = NeedPosted(need_id=needs[-1], need=need())
        elif roll < 0.9 and needs:
            payload = NeedAmended(need_id=rng.choice(needs), need=need(), changed=["shift"])
        elif proposals:
            match = rng.choice(proposals)
            payload, org = DeclineMatch(match_id=match.match_id), str(match.volunteer_id)
        else:
            continue
        for d in apply(state, f.envelope(payload, at=at, event_id=new_id(), org=org)):
            out.append(d)
            if isinstance(d.payload, MatchProposed):
                proposals.append(d.payload)
    return out
