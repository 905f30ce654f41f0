"""The matcher's shortcuts against the plain rules they replace: each must choose exactly as the
rule does (the recorded digests guard whole cities; these reach the corners a city may not)."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest

from schemas.specs import NeedSpec, PledgeSpec
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
