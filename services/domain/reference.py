"""The skills and need categories postings may name, as a pure value (issue #16).

`Terms` is the state of both lists; `evolve` folds a reference event into it, so the auditor's
replay rebuilds from the log exactly what the gateway's `reference_terms` table holds. The
rules here are pure: whether a posting names only live terms it may use (`posting_problems`),
and who may define or retire a term (`define_refusal`, `retire_refusal`).

Where the known-code check is made, and why there: docs/architecture.md, "Reference data".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from schemas.common import Category, Skill
from schemas.message import Message
from schemas.messages import OrgKind
from schemas.reference import ReferenceTermDefined, ReferenceTermRetired, TermKind

PLURAL = {TermKind.SKILL: "skills", TermKind.CATEGORY: "categories"}
"""Each list's name in the API (`/v1/reference/skills`, `/v1/reference/categories`)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a list: its code (what postings carry), its labels (what people read),
    the district it is for (None: the whole city), and whether it was retired."""

    kind: TermKind
    code: str
    label_zh: str
    label_en: str
    district: str | None = None
    retired: bool = False

    def label(self, lang: str) -> str:
        """The label in the page's language (`zh` or `en`)."""
        return self.label_en if lang == "en" else self.label_zh

    def usable_in(self, district: str | None) -> bool:
        """Whether a posting at `district` may name this term (city-wide terms: anywhere)."""
        return self.district is None or self.district == district


def _seed(kind: TermKind, rows: Iterable[tuple[str, str, str]]) -> tuple[Term, ...]:
    return tuple(Term(kind, str(code), zh, en) for code, zh, en in rows)


SEED: tuple[Term, ...] = (
    *_seed(
        TermKind.CATEGORY,
        (
            (Category.ELDERLY_MEALS, "银发助餐", "Elderly meals"),
            (Category.ELDER_CARE, "养老服务", "Elder care"),
            (Category.CHILD_CARE, "一老一小", "Child care"),
            (Category.TUTORING, "课业辅导", "Tutoring"),
            (Category.EMERGENCY, "应急救援", "Emergency"),
            (Category.HARDSHIP_RELIEF, "困难群众帮扶", "Hardship relief"),
            (Category.VULNERABLE_CHILDREN, "孤困儿童关爱", "Vulnerable children"),
            (Category.LIVELIHOOD_PROJECT, "民生微实事", "Livelihood projects"),
            (Category.HOME_WATCH, "看家守院", "Home watch"),
            (Category.MEDIATION, "家门口的调解室", "Mediation"),
            (Category.NEW_WORKERS, "宁小蜂驿站", "New-economy workers"),
            (Category.CULTURE, "文化活动", "Culture"),
            (Category.GENERAL, "其他", "Other"),
            ("bathing_help", "助浴", "Bathing help"),
            ("medical_escort", "助医", "Accompanying to the doctor"),
            ("cleaning_help", "助洁", "Cleaning help"),
            ("mobility_help", "助行", "Mobility help"),
            ("after_school", "四点半课堂", "After-school class at 4:30"),
            ("counselling", "心理疏导", "Counselling"),
            ("legal_aid", "法律援助", "Legal aid"),
            ("digital_elderly", "数字助老", "Helping the elderly with phones and apps"),
            ("education", "教育", "Education"),
        ),
    ),
    *_seed(
        TermKind.SKILL,
        (
            (Skill.DRIVING, "驾驶", "Driving"),
            (Skill.FIRST_AID, "急救", "First aid"),
            (Skill.ELDERLY_CARE, "助老护理", "Elderly care"),
            (Skill.TUTORING, "辅导", "Tutoring"),
            (Skill.COOKING, "烹饪", "Cooking"),
            (Skill.MEAL_DELIVERY, "送餐", "Meal delivery"),
            (Skill.CHILD_CARE, "看护儿童", "Child care"),
            (Skill.LEGAL, "法律", "Legal"),
            (Skill.COUNSELLING, "心理疏导", "Counselling"),
            (Skill.EMERGENCY_RESCUE, "应急救援", "Emergency rescue"),
            (Skill.PATROL, "巡逻", "Patrol"),
            (Skill.GENERAL, "通用", "General"),
            ("bathing_assist", "助浴", "Bathing assistance"),
            ("medical_escort", "陪同就医", "Accompanying to the doctor"),
            ("cleaning", "保洁", "Cleaning"),
            ("mobility_assist", "助行", "Mobility assistance"),
            ("mediation", "人民调解", "Mediation"),
            ("legal_advice", "法律咨询", "Legal advice"),
            ("digital_help", "数字助老", "Helping with phones and apps"),
        ),
    ),
)
"""The built-in terms, defined on the log at the first start (`services.reference.seed`): the
codes of the former enumerations (so every posting made before keeps working) and the
programmes communities name themselves (助浴, 助医, 助洁, 助行, 四点半课堂, 心理疏导, 法律援助,
人民调解, 数字助老 …). A community's own come at run time."""


class Terms:
    """Both lists as they stand: every term ever defined, retired ones included."""

    def __init__(self, terms: Iterable[Term] = ()) -> None:
        self._by_key: dict[tuple[TermKind, str], Term] = {(t.kind, t.code): t for t in terms}

    def __iter__(self) -> Iterator[Term]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Terms) and self._by_key == other._by_key

    def __hash__(self) -> int:  # pragma: no cover - value object, never a dict key
        return hash(frozenset(self._by_key.items()))

    def get(self, kind: TermKind, code: str) -> Term | None:
        """The term, live or retired, or None."""
        return self._by_key.get((kind, code))

    def listed(
        self, kind: TermKind, district: str | None = None, retired: bool = False
    ) -> list[Term]:
        """One list in the order its terms were defined (the built-in ones first, as the
        forms always showed them): its live terms (and retired ones when asked), only those
        usable in `district` when one is given."""
        return [
            t
            for t in self._by_key.values()
            if t.kind is kind
            and (retired or not t.retired)
            and (district is None or t.usable_in(district))
        ]

    def label(self, kind: TermKind, code: str, lang: str) -> str:
        """The term's label in `lang`; the code itself for a code no list knows."""
        term = self.get(kind, code)
        return term.label(lang) if term is not None else code

    def problem(self, kind: TermKind, code: str, districts: Iterable[str | None]) -> str | None:
        """Why a new posting may not name `code` at any of `districts` (None when it may).
        Says nothing of the value itself, as every refusal (it may be mistyped personal data)."""
        term = self.get(kind, code)
        plural = PLURAL[kind]
        if term is None:
            return f"unknown {kind.value}: not in the {plural} list (GET /v1/reference/{plural})"
        if term.retired:
            return f"this {kind.value} was retired: new postings may not name it"
        outside = [d for d in districts if not term.usable_in(d)]
        if outside:
            return f"this {kind.value} is defined for {term.district} only"
        return None

    def with_term(self, term: Term) -> Terms:
        """A copy with `term` added at the end, or replaced where it stands."""
        terms = dict(self._by_key)
        terms[(term.kind, term.code)] = term
        return Terms(terms.values())


def evolve(terms: Terms, event: Message) -> Terms:
    """The lists after one event of reference.events (others change nothing). A definition of
    a code already defined, or a retirement of one not defined, changes nothing: the gateway
    writes neither, and a replay must not invent what the table never held."""
    if isinstance(event, ReferenceTermDefined):
        if terms.get(event.kind, event.code) is not None:
            return terms
        term = Term(event.kind, event.code, event.label_zh, event.label_en, event.district)
        return terms.with_term(term)
    if isinstance(event, ReferenceTermRetired):
        found = terms.get(event.kind, event.code)
        if found is None or found.retired:
            return terms
        return terms.with_term(replace(found, retired=True))
    return terms


def _problems(
    terms: Terms, kind: TermKind, codes: Iterable[str], field: str, districts: list[str | None]
) -> list[dict[str, str]]:
    return [
        {
            "field": f"{field}.{i}" if i is not None else field,
            "reason": reason,
            "value_type": "string",
        }
        for i, code in codes_indexed(codes)
        if (reason := terms.problem(kind, code, districts)) is not None
    ]


def codes_indexed(codes: Iterable[str]) -> Iterator[tuple[int | None, str]]:
    """(index, code) of a list of codes, or (None, code) for a single code given as a str."""
    if isinstance(codes, str):
        yield None, codes
        return
    yield from enumerate(codes)


def posting_problems(terms: Terms, body: Any) -> list[dict[str, str]]:
    """Every code in a posted need, pledge or fund that a new posting may not name, as the
    API's 422 entries (`category`, `required_skills.1`, `skills.0`, `categories.2`).

    A need's codes must be usable at its place, a pledge's at the volunteer's home; a fund's
    categories in each district it may pay (anywhere, when it names none, is allowed: such a
    fund pays a district's own category only for needs there)."""
    from schemas import specs

    if isinstance(body, specs.NeedSpec):
        at: list[str | None] = [body.place.district]
        return [
            *_problems(terms, TermKind.CATEGORY, body.category, "category", at),
            *_problems(terms, TermKind.SKILL, body.required_skills, "required_skills", at),
        ]
    if isinstance(body, specs.PledgeSpec):
        return _problems(terms, TermKind.SKILL, body.skills, "skills", [body.home.district])
    if isinstance(body, specs.FundSpec):
        where: list[str | None] = list(body.districts)
        return _problems(terms, TermKind.CATEGORY, body.categories, "categories", where)
    return []


def define_refusal(
    kind: OrgKind | None, is_operator: bool, own_district: str | None, district: str | None
) -> str | None:
    """Why this caller may not define (or retire) a term for `district` (None: city-wide);
    None when they may. The operator may for the whole city or any district; a street office
    for its own district only; nobody else."""
    if is_operator:
        return None
    if kind is not OrgKind.STREET_OFFICE:
        return "only the exchange's operator, or a street office for its own district, may do this"
    if district is None or district != own_district:
        return f"a street office may do this for its own district ({own_district}) only"
    return None
