"""A row of cells → the very request bodies the HTTP API validates, or the row's problems.

An organisation's row becomes `OrgRegistration` (what `POST /v1/orgs` takes); a volunteer's
row becomes `VolunteerBody` (`POST /v1/volunteers`) and `PledgeSpec` (`PUT …/pledge`), and is
screened by the gateway's own personal-data check. So a row is accepted exactly when the API
would accept the same person typed in by hand; this module only turns spreadsheet text into
JSON (skill and travel labels in Chinese or English, the availability format, numbers) and
turns the models' refusals into reasons a street office can act on. Pure: no I/O.

Availability is written as weekday ranges (`周一 09:00-12:00`, `周一至周五 14:00-17:00`,
`每天 18:00-20:00`, `Mon-Fri 09:00-11:30`) or dated ones (`2026-12-05 09:00-12:00`), several
separated by `;` `；` `,` `，` or line breaks. A pledge carries concrete windows, so weekday
ranges are laid over the next 14 days from tomorrow in Nanjing time, as the web app's weekly
grid is (`services.web.routes.availability`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from schemas.bodies import PledgeSpec
from schemas.common import Skill
from schemas.personal_data import find_personal_data
from schemas.reference import TermKind
from services.domain.reference import Term
from services.gateway.operator_api import OrgRegistration
from services.gateway.screening import personal_data_problems
from services.gateway.writes import VolunteerBody
from services.identity import name_key
from services.importing.columns import ORG_COLUMNS, VOLUNTEER_COLUMNS, Column, folded, map_header
from services.importing.reading import Table
from services.importing.reasons import Problem

ZONE = ZoneInfo("Asia/Shanghai")
WEEKS_DAYS = 14
"""Weekday ranges are laid over this many days from tomorrow (the web app's grid: two weeks)."""
MOST_REF = 64

KIND_LABELS = {
    "基金会": "foundation",
    "慈善基金会": "foundation",
    "社区": "community",
    "社区居委会": "community",
    "居委会": "community",
    "街道": "street_office",
    "街道办": "street_office",
    "街道办事处": "street_office",
    "streetoffice": "street_office",
    "社会组织": "social_org",
    "社工机构": "social_org",
    "社会工作服务中心": "social_org",
    "socialorg": "social_org",
    "socialorganisation": "social_org",
    "审计": "auditor",
    "审计机构": "auditor",
}
TRAVEL_LABELS = {
    "同社区": "same_community",
    "社区内": "same_community",
    "同街道": "same_street",
    "街道内": "same_street",
    "同区": "same_district",
    "区内": "same_district",
    "全市": "anywhere",
    "samecommunity": "same_community",
    "samestreet": "same_street",
    "samedistrict": "same_district",
}
WEEKDAY_NAMES = {
    **{f"{p}{d}": i for p in ("周", "星期", "礼拜") for i, d in enumerate("一二三四五六日")},
    **{"周天": 6, "星期天": 6, "礼拜天": 6},
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        name: i
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}
DAY_SETS = {
    "每天": range(7),
    "每日": range(7),
    "daily": range(7),
    "everyday": range(7),
    "工作日": range(5),
    "weekdays": range(5),
    "周末": range(5, 7),
    "weekends": range(5, 7),
}
_DASH = r"\s*(?:-|–|—|~|～|至|到|to)\s*"
_CLOCK = r"\d{1,2}[:：]\d{2}"
_ENTRY = re.compile(
    rf"^(?P<days>.+?)\s*(?P<start>{_CLOCK}){_DASH}(?P<end>{_CLOCK})$", re.IGNORECASE
)
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_SPLIT_ENTRIES = re.compile(r"[;；,，\n\r]+")
_SPLIT_SKILLS = re.compile(r"[、，,;；/／\n]+")


@dataclass(frozen=True)
class OrgRow:
    """An organisation's row, valid as `POST /v1/orgs` takes it."""

    line: int
    registration: OrgRegistration
    name_column: str
    """The name column as the file spells its header (名称, name …), for a later problem."""


@dataclass(frozen=True)
class VolunteerRow:
    """A volunteer's row, valid as `POST /v1/volunteers` and `PUT …/pledge` take it."""

    line: int
    ref: str
    volunteer: VolunteerBody
    pledge: PledgeSpec
    fingerprint: str
    """A hash of the row's cells, to tell on a rerun whether the row changed since."""


class BadCell(ValueError):
    """A cell this module cannot turn into JSON; `key` and `values` say why."""

    def __init__(self, field: str, key: str, **values: Any) -> None:
        super().__init__(key)
        self.field, self.key, self.values = field, key, values


# ---- organisations ----


def org_rows(table: Table) -> tuple[list[OrgRow], list[Problem]]:
    """The organisations of a file and the problems of its bad rows (each row once)."""
    fields = map_header(table.headers, ORG_COLUMNS, table.header_line)
    shown = _shown_headers(table.headers, fields, ORG_COLUMNS)
    good: list[OrgRow] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for line, cells in table.rows:
        raw = _cells(cells, fields)
        body = {k: v for k, v in raw.items() if v}
        if "kind" in body:
            body["kind"] = KIND_LABELS.get(folded(body["kind"]), body["kind"].replace("-", "_"))
        try:
            registration = OrgRegistration.model_validate(body)
        except ValidationError as exc:
            problems += _model_problems(line, exc, shown, raw)
            continue
        key = name_key(registration.name)
        if key in seen:
            problems.append(
                Problem(
                    line,
                    shown["name"],
                    "row.duplicate",
                    {"line": seen[key], "what": ("what.name",)},
                )
            )
            continue
        seen[key] = line
        good.append(OrgRow(line, registration, shown["name"]))
    return good, _in_file_order(problems, table.headers)


# ---- volunteers ----


def volunteer_rows(
    table: Table, today: date, listed: Mapping[str, str] | None = None
) -> tuple[list[VolunteerRow], list[Problem]]:
    """The volunteers of a file with their pledges, and the problems of its bad rows. `today`
    is Nanjing's date: weekday ranges start tomorrow. `listed`: the reference lists' skill
    words (`listed_skills`)."""
    fields = map_header(table.headers, VOLUNTEER_COLUMNS, table.header_line)
    shown = _shown_headers(table.headers, fields, VOLUNTEER_COLUMNS)
    good: list[VolunteerRow] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for line, cells in table.rows:
        raw = _cells(cells, fields)
        row_problems = _volunteer_row(line, raw, shown, today, listed)
        if isinstance(row_problems, list):
            problems += row_problems
            continue
        row = row_problems
        if row.ref in seen:
            problems.append(
                Problem(
                    line,
                    shown["ref"],
                    "row.duplicate",
                    {"line": seen[row.ref], "what": ("what.ref",)},
                )
            )
            continue
        seen[row.ref] = line
        good.append(row)
    return good, _in_file_order(problems, table.headers)


def _volunteer_row(
    line: int,
    raw: dict[str, str],
    shown: dict[str, str],
    today: date,
    listed: Mapping[str, str] | None = None,
) -> VolunteerRow | list[Problem]:
    ref = raw.get("ref", "")
    problems = _ref_problems(line, ref, shown["ref"])
    home = {k: raw[k] for k in ("district", "street", "community") if raw.get(k)}
    volunteer = {"pseudonym": raw.get("pseudonym", ""), "home": home}
    pledge: dict[str, Any] = dict(volunteer)
    converters: dict[str, Any] = {
        "skills": lambda cell: skills(cell, listed),
        "availability": lambda cell: availability(cell, today),
        "weekly_hour_limit": hours,
        "travel": travel,
    }
    for field, convert in converters.items():
        if not raw.get(field):
            continue
        try:
            pledge[field] = convert(raw[field])
        except BadCell as bad:
            problems.append(Problem(line, shown[bad.field], bad.key, bad.values))
    bodies: list[BaseModel] = []
    for model, body in ((VolunteerBody, volunteer), (PledgeSpec, pledge)):
        try:
            bodies.append(model.model_validate(body))
        except ValidationError as exc:
            problems += _model_problems(line, exc, shown, raw)
    for body_model in bodies:  # the gateway's screening, as `submit` runs it on each body
        for found in personal_data_problems(body_model, None):
            field = _field_of(found["field"].split("."))
            kind = re.search(r"\((\w+)\)$", found["reason"])
            problems.append(
                Problem(
                    line,
                    shown.get(field, field),
                    "row.personal",
                    {"kind": (f"kind.{kind[1]}" if kind else "",)},
                )
            )
    if problems or len(bodies) < 2:
        return _once_per_column(problems)
    v, p = bodies
    assert isinstance(v, VolunteerBody) and isinstance(p, PledgeSpec)
    fingerprint = hashlib.sha256(json.dumps(raw, sort_keys=True, ensure_ascii=False).encode())
    return VolunteerRow(line, ref, v, p, fingerprint.hexdigest())


def _ref_problems(line: int, ref: str, column: str) -> list[Problem]:
    """The organisation's own key of the row: present, short, and no personal data (a phone
    number or an ID number is no key: it would be stored)."""
    if not ref:
        return [Problem(line, column, "row.required")]
    if len(ref) > MOST_REF:
        return [Problem(line, column, "row.too_long", {"most": MOST_REF})]
    hit = find_personal_data(ref)
    if hit is not None:
        return [Problem(line, column, "row.personal", {"kind": (f"kind.{hit.kind}",)})]
    return []


def skills(cell: str, listed: Mapping[str, str] | None = None) -> list[str]:
    """`驾驶、急救` / `driving, first aid` → the API's skill values. `listed` (folded label →
    code) names the skills of the reference lists, those added at run time among them (see
    `listed_skills`). A word that is no known label is passed on as it is, for the API's own
    validation to judge."""
    labels = {**skill_labels(), **listed} if listed else skill_labels()
    words: list[str] = []
    for piece in (p.strip() for p in _SPLIT_SKILLS.split(cell)):
        known = folded(piece) in labels
        words += [piece] if known or not piece else piece.split()  # 驾驶 送餐, first aid
    # 电脑手机帮忙、IT support: two words, one skill (the API refuses a repeated entry)
    return list(dict.fromkeys(labels.get(folded(w), w) for w in words if w))


@cache
def skill_labels() -> dict[str, str]:
    """Folded label (either language's, as the web app shows it) or value → skill value."""
    from services.web.i18n import LANGUAGES, catalogue

    labels: dict[str, str] = {}
    for lang in LANGUAGES:
        for key, label in catalogue(lang).items():
            if key.startswith("skill."):
                value = key.removeprefix("skill.")
                labels[folded(label)] = value
                labels[folded(value)] = value
    return labels


def listed_skills(terms: Iterable[Term]) -> dict[str, str]:
    """Folded label (either language) or code → code, for every live skill of the reference
    lists: a file may name a skill added at run time (电脑手机帮忙) as people read it."""
    words: dict[str, str] = {}
    for term in terms:
        if term.kind is TermKind.SKILL and not term.retired:
            for word in (term.code, term.label_zh, term.label_en):
                words[folded(word)] = term.code
    return words


def travel(cell: str) -> str:
    """`本街道` / `同街道` / `same street` → `same_street`; anything else is passed on."""
    return travel_labels().get(folded(cell), cell.strip())


@cache
def travel_labels() -> dict[str, str]:
    """Folded label (the web app's, either language, or one of TRAVEL_LABELS) → value."""
    from services.web.i18n import LANGUAGES, catalogue

    labels = dict(TRAVEL_LABELS)
    for lang in LANGUAGES:
        for key, label in catalogue(lang).items():
            if key.startswith("travel."):
                labels[folded(label)] = key.removeprefix("travel.")
    return labels


def hours(cell: str) -> int:
    """`8`, `8小时`, `8 h` → 8."""
    text = re.sub(r"\s*(小时|个小时|h|hours?)$", "", cell.strip(), flags=re.IGNORECASE)
    if not re.fullmatch(r"\d{1,4}", text):
        raise BadCell("weekly_hour_limit", "row.number")
    return int(text)


def availability(cell: str, today: date) -> list[dict[str, str]]:
    """The availability cell → the pledge's windows (ISO moments with the +08:00 offset)."""
    windows: list[tuple[datetime, datetime]] = []
    for entry in (e.strip() for e in _SPLIT_ENTRIES.split(cell)):
        if not entry:
            continue
        m = _ENTRY.match(entry)
        start = _clock(m["start"]) if m else None
        end = _clock(m["end"]) if m else None
        days = _days(m["days"].strip(), today) if m else None
        if m is None or start is None or end is None or days is None or end <= start:
            raise BadCell("availability", "row.availability", value=quoted(entry))
        windows += [
            (datetime.combine(d, start, tzinfo=ZONE), datetime.combine(d, end, tzinfo=ZONE))
            for d in days
        ]
    windows.sort()
    return [{"start": s.isoformat(), "end": e.isoformat()} for s, e in windows]


def _clock(text: str) -> time | None:
    hh, mm = re.split("[:：]", text)
    if int(hh) > 23 or int(mm) > 59:
        return None
    return time(int(hh), int(mm))


def _days(text: str, today: date) -> list[date] | None:
    dated = _DATE.match(text)
    if dated:
        try:
            return [date(int(dated[1]), int(dated[2]), int(dated[3]))]
        except ValueError:
            return None
    weekdays = _weekdays(text)
    if weekdays is None:
        return None
    days = (today + timedelta(days=n) for n in range(1, WEEKS_DAYS + 1))
    return [d for d in days if d.weekday() in weekdays]


def _weekdays(text: str) -> set[int] | None:
    key = folded(text)
    if key in DAY_SETS:
        return set(DAY_SETS[key])
    parts = re.split(_DASH, text.strip(), maxsplit=1, flags=re.IGNORECASE)
    ends = [WEEKDAY_NAMES.get(folded(p)) for p in parts]
    if any(e is None for e in ends):
        return None
    first, last = ends[0], ends[-1]
    assert first is not None and last is not None
    return {(first + n) % 7 for n in range((last - first) % 7 + 1)}


# ---- shared ----


def _cells(cells: list[str], fields: dict[str, int]) -> dict[str, str]:
    return {f: (cells[i].strip() if i < len(cells) else "") for f, i in fields.items()}


def _shown_headers(
    headers: list[str], fields: dict[str, int], columns: tuple[Column, ...]
) -> dict[str, str]:
    """field → its column's name as this file spells it (or the usual name when absent)."""
    return {c.field: headers[fields[c.field]] if c.field in fields else c.shown for c in columns}


def _field_of(loc: list[Any]) -> str:
    """The row field a model error's location is about (home.district → district)."""
    parts = [str(p) for p in loc if not isinstance(p, int) and not str(p).isdigit()]
    if parts and parts[0] == "home" and len(parts) > 1:
        return parts[1]
    return parts[0] if parts else ""


def _model_problems(
    line: int, exc: ValidationError, shown: dict[str, str], raw: dict[str, str]
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = _field_of(list(error["loc"]))
        if not field and "overlap" in str(error.get("msg", "")):
            field = "availability"  # the pledge's own check, on the whole model
        column = shown.get(field, field or "")
        problems.append(Problem(line, column, *_reason(field, error, raw.get(field, ""))))
    return _once_per_column(problems)


def _reason(field: str, error: Any, cell: str) -> tuple[str, dict[str, Any]]:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing" or (kind in ("string_too_short", "too_short") and not cell):
        return "row.required", {}
    if kind == "string_too_long":
        return "row.too_long", {"most": ctx.get("max_length")}
    if kind in ("enum", "literal_error") or (
        kind == "string_pattern_mismatch" and field == "skills"
    ):
        key = {"skills": "row.skill", "travel": "row.travel"}.get(field, "row.kind")
        value = cell if field != "skills" else _unknown_skill(cell)
        expected = str(ctx.get("expected", ""))
        if kind == "string_pattern_mismatch":  # skills are codes of a list (reference data)
            expected = ", ".join(f"'{s.value}'" for s in Skill)  # the built-in ones named
        known = _known(field, expected)
        return key, {"value": quoted(value), "known": known}
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "row.number", {}
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = {"weekly_hour_limit": (1, 60)}.get(field, ("", ""))
        return "row.range", {"low": bounds[0], "high": bounds[1]}
    if "overlap" in str(error.get("msg", "")):
        return "row.overlap", {}
    return "row.invalid", {"error": str(error.get("msg", kind))}


KIND_NAMES = {
    "foundation": "基金会",
    "community": "社区",
    "street_office": "街道办",
    "social_org": "社会组织",
    "auditor": "审计",
}


def _known(field: str, expected: str) -> dict[str, str]:
    """The values a vocabulary field takes, as each language names them: the web app's labels
    for skills and travel ranges (驾驶、急救…), and the API's values in English."""
    from services.web.i18n import catalogue

    values = re.findall(r"'([^']+)'", expected)
    prefix = {"skills": "skill.", "travel": "travel."}.get(field)
    zh = catalogue("zh-CN")
    names = [zh.get(f"{prefix}{v}", v) if prefix else KIND_NAMES.get(v, v) for v in values]
    return {"zh-CN": "、".join(names), "en": ", ".join(values)}


def quoted(value: str) -> str:
    """A cell quoted in a reason, so it can be found: at most 40 characters, and never when it
    holds personal data (a phone number typed into the wrong column is not echoed back)."""
    return "…" if find_personal_data(value) is not None else value[:40]


def _unknown_skill(cell: str) -> str:
    labels = skill_labels()
    unknown = [w for w in skills(cell) if folded(w) not in labels]
    return unknown[0] if unknown else cell


def _in_file_order(problems: list[Problem], headers: list[str]) -> list[Problem]:
    """By line, then by column as the file orders them."""
    order = {h: i for i, h in enumerate(headers)}
    return sorted(problems, key=lambda p: (p.line, order.get(p.column, len(order))))


def _once_per_column(problems: list[Problem]) -> list[Problem]:
    """One problem per (line, column): a bad skill is one reason, not one per list item."""
    seen: set[tuple[int, str]] = set()
    kept = []
    for p in problems:
        if (p.line, p.column) not in seen:
            seen.add((p.line, p.column))
            kept.append(p)
    return kept
