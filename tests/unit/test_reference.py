"""Reference data (issue #16): codes, the seed, the fold of the log, what a posting may name
and who may add to the lists; all pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import export
from schemas.codec import decode
from schemas.common import Category, Skill
from schemas.messages import OrgKind, PostNeed
from schemas.reference import ReferenceTermDefined, ReferenceTermRetired, TermKind
from schemas.specs import FundSpec, NeedSpec, PledgeSpec
from services.domain.reference import (
    SEED,
    Term,
    Terms,
    define_refusal,
    evolve,
    posting_problems,
)
from services.gateway.reference_api import filled
from tests import factories as f

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden"
SKILL, CATEGORY = TermKind.SKILL, TermKind.CATEGORY


@pytest.mark.parametrize("code", ["it_support", "ab", "a" * 40, "x9_"])
def test_a_code_is_lower_case_ascii_starting_with_a_letter(code: str) -> None:
    assert (
        ReferenceTermDefined(kind=SKILL, code=code, label_zh="帮忙", label_en="Help").code == code
    )


@pytest.mark.parametrize("code", ["a", "a" * 41, "IT", "9lives", "it-support", "电脑", "_x", ""])
def test_anything_else_is_not_a_code(code: str) -> None:
    with pytest.raises(ValidationError):
        ReferenceTermDefined(kind=SKILL, code=code, label_zh="帮忙", label_en="Help")
    with pytest.raises(ValidationError):
        NeedSpec.model_validate(f.volunteer_need(required_skills=[code]))


def test_the_seed_holds_every_former_enumeration_value_once_with_both_labels() -> None:
    keys = [(t.kind, t.code) for t in SEED]
    assert len(keys) == len(set(keys))
    assert {c.value for c in Category} <= {t.code for t in SEED if t.kind is CATEGORY}
    assert {s.value for s in Skill} <= {t.code for t in SEED if t.kind is SKILL}
    for t in SEED:
        ReferenceTermDefined(kind=t.kind, code=t.code, label_zh=t.label_zh, label_en=t.label_en)
        assert type(t.code) is str and t.district is None and not t.retired
    assert {"助浴", "助医", "四点半课堂", "数字助老", "法律援助"} <= {t.label_zh for t in SEED}


def test_folding_the_seed_again_changes_nothing() -> None:
    """The fold, as the gateway's table, ignores a definition of a code already defined: a
    seed written twice (two gateways starting at once) reads as one."""
    once = Terms()
    for t in SEED:
        once = evolve(once, _defined(t))
    twice = once
    for t in SEED:
        twice = evolve(twice, _defined(t))
    assert twice == once and len(once) == len(SEED)


def _defined(t: Term) -> ReferenceTermDefined:
    return ReferenceTermDefined(
        kind=t.kind, code=t.code, label_zh=t.label_zh, label_en=t.label_en, district=t.district
    )


def test_retiring_keeps_the_term_and_its_labels_but_not_in_the_live_list() -> None:
    terms = evolve(Terms(SEED), ReferenceTermRetired(kind=SKILL, code="patrol"))
    assert terms.get(SKILL, "patrol") == Term(SKILL, "patrol", "巡逻", "Patrol", retired=True)
    assert "patrol" not in {t.code for t in terms.listed(SKILL)}
    assert "patrol" in {t.code for t in terms.listed(SKILL, retired=True)}
    assert terms.label(SKILL, "patrol", "en") == "Patrol"
    assert evolve(terms, ReferenceTermRetired(kind=SKILL, code="nobody")) == terms


LOCAL = Term(CATEGORY, "lane_garden", "楼道微花园", "Lane gardens", district="鼓楼区")
TERMS = evolve(Terms(SEED).with_term(LOCAL), ReferenceTermRetired(kind=SKILL, code="patrol"))


def _fields(body: object) -> list[str]:
    return [p["field"] for p in posting_problems(TERMS, body)]


def test_a_posting_naming_only_live_terms_passes() -> None:
    assert _fields(NeedSpec.model_validate(f.volunteer_need())) == []
    assert _fields(PledgeSpec.model_validate(f.pledge())) == []
    assert _fields(FundSpec.model_validate(f.fund())) == []


def test_unknown_and_retired_codes_are_named_by_field() -> None:
    need = f.volunteer_need(category="astrology", required_skills=["driving", "patrol", "juggling"])
    assert _fields(NeedSpec.model_validate(need)) == [
        "category",
        "required_skills.1",
        "required_skills.2",
    ]
    assert _fields(PledgeSpec.model_validate(f.pledge(skills=["juggling"]))) == ["skills.0"]
    fund = FundSpec.model_validate(f.fund(categories=["general", "astrology"]))
    assert _fields(fund) == ["categories.1"]
    reason = posting_problems(TERMS, PledgeSpec.model_validate(f.pledge(skills=["patrol"])))
    assert "retired" in reason[0]["reason"] and "patrol" not in reason[0]["reason"]


def test_a_district_term_is_for_postings_in_its_district_only() -> None:
    here = f.money_need(category="lane_garden")
    away = f.money_need(category="lane_garden", place={"district": "玄武区"})
    assert _fields(NeedSpec.model_validate(here)) == []
    assert _fields(NeedSpec.model_validate(away)) == ["category"]
    ok = FundSpec.model_validate(f.fund(categories=["lane_garden"], districts=["鼓楼区"]))
    wide = FundSpec.model_validate(f.fund(categories=["lane_garden"], districts=[]))
    other = FundSpec.model_validate(f.fund(categories=["lane_garden"], districts=["玄武区"]))
    assert _fields(ok) == [] and _fields(wide) == [] and _fields(other) == ["categories.0"]
    assert [t.code for t in TERMS.listed(CATEGORY, "玄武区") if t.district] == []
    assert "lane_garden" in {t.code for t in TERMS.listed(CATEGORY, "鼓楼区")}


@pytest.mark.parametrize(
    ("kind", "operator", "own", "district", "allowed"),
    [
        (None, True, None, None, True),  # the operator, city-wide
        (None, True, None, "玄武区", True),  # the operator, for any district
        (OrgKind.STREET_OFFICE, False, "鼓楼区", "鼓楼区", True),
        (OrgKind.STREET_OFFICE, False, "鼓楼区", "玄武区", False),
        (OrgKind.STREET_OFFICE, False, "鼓楼区", None, False),  # never city-wide
        (OrgKind.COMMUNITY, False, "鼓楼区", "鼓楼区", False),
        (OrgKind.FOUNDATION, False, "鼓楼区", None, False),
        (OrgKind.AUDITOR, False, "鼓楼区", "鼓楼区", False),
        (None, False, None, "鼓楼区", False),  # a volunteer
    ],
)
def test_who_may_extend_a_list(
    kind: OrgKind | None, operator: bool, own: str | None, district: str | None, allowed: bool
) -> None:
    assert (define_refusal(kind, operator, own, district) is None) is allowed


@pytest.mark.parametrize("name", ["PostNeed.v3", "NeedPosted.v2", "FundOpened.v1", "PledgeMade.v3"])
def test_an_enum_era_message_upcasts_to_codes_unchanged(name: str) -> None:
    raw = (GOLDEN / f"{name}.json").read_bytes()
    env = decode(raw)
    assert env.schema_version > int(name.split(".v")[1])  # upcast, maybe more than one step
    stored = json.loads(raw)["payload"]
    assert env.payload.model_dump(mode="json") | stored == env.payload.model_dump(mode="json")


def test_the_runtime_schema_lists_the_live_codes_where_the_static_one_has_a_pattern() -> None:
    static = export.message_schema(PostNeed)
    live = filled(static, TERMS)
    need = live["$defs"]["NeedSpec"]["properties"]
    assert need["category"]["enum"] == [t.code for t in TERMS.listed(CATEGORY)]
    assert "patrol" not in need["required_skills"]["items"]["enum"]
    assert "enum" not in static["$defs"]["NeedSpec"]["properties"]["category"]
