"""Value types shared by postings and events: text, money, places, time windows, vocabularies.

Validation lives here, once, so that the HTTP API, the intake services and any foreign client
checking our topics refuse exactly the same things.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


class Frozen(BaseModel):
    """Base of every wire model: immutable; an unknown field is an error, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _nfc(value: object) -> object:
    """Normalise text to NFC so that the same Chinese name typed two ways compares equal."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return value


CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode category Cc is exactly these two ranges (C0, DEL and C1); a regex scan of a name
is several times cheaper than asking `unicodedata` about each character, on every decode."""


def _no_control_chars(value: str) -> str:
    if CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters")
    if INVISIBLE_CHARS.search(value):
        raise ValueError(
            "must not contain invisible formatting characters (zero-width, bidi controls, BOM),"
            " lone surrogates or private-use characters"
        )
    return value


INVISIBLE_CHARS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"  # Unicode category Cf (format): invisible, yet it makes 鼓楼区
    "\ud800-\udfff"  # Cs: lone surrogates, which UTF-8 (and so PostgreSQL and JSON) cannot carry
    "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]"  # Co: private use
)
"""Characters refused in names and places: they are invisible or undefined, so a name carrying
one looks like another name (鼓楼区 and 鼓楼区 + U+200B) while comparing different. Checked
against `unicodedata` over every code point by the unit tests."""

TEXT_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)
"""Characters refused in free text: control characters other than tab and line breaks (NUL
above all, which PostgreSQL's text and jsonb cannot hold), lone surrogates (not UTF-8), and the
bidi overrides that make text read differently from what it says."""


def _safe_text(value: str) -> str:
    found = TEXT_FORBIDDEN.search(value)
    if found:
        raise ValueError(
            f"must not contain the character U+{ord(found.group()):04X} (control characters,"
            " lone surrogates and bidi overrides cannot be stored or shown faithfully)"
        )
    return value


Name = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(min_length=1, max_length=120),
    AfterValidator(_no_control_chars),
]
"""A person-facing name (organisation, fund, need title): NFC, 1–120 characters."""

Description = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(min_length=0, max_length=2000),
    AfterValidator(_safe_text),
]
"""Free text shown to people: NFC, at most 2,000 characters."""

PlaceName = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(min_length=1, max_length=60),
    AfterValidator(_no_control_chars),
]
"""A district, street or community name such as 鼓楼区 or 江东街道."""

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _within_window(value: datetime) -> datetime:
    # the year first: converting 9999-12-31T23:00-08:00 to UTC overflows Python's datetime
    if not (EARLIEST.year <= value.year < LATEST.year) or not (EARLIEST <= value < LATEST):
        raise ValueError("must be between 2000-01-01 and 2100-01-01 (UTC)")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_within_window)]
"""A time with its offset, between 2000 and 2100: every date on the wire. Outside that window
a date is a typo or an attack, and some (year 9999 west of UTC) cannot even be converted to
UTC or stored by PostgreSQL."""

MAX_AMOUNT_MINOR = 10**13
"""Largest single amount accepted, in minor units (one hundred billion yuan): a typo guard."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 alphabetic code. The exchange runs in CNY; the code is carried so nothing assumes it."""


class Money(Frozen):
    """An amount of money as integer minor units (fen for CNY) and its currency. Never a float."""

    amount_minor: Annotated[int, Field(gt=0, le=MAX_AMOUNT_MINOR, strict=True)]
    currency: CurrencyCode = "CNY"


CODE_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
"""A reference term's code: lower-case ASCII, a letter first, 2–40 characters. Stable for
life: labels change, a code is only ever retired (docs/contract.md, "Reference data")."""

SkillCode = Annotated[
    str,
    StringConstraints(pattern=CODE_PATTERN),
    Field(json_schema_extra={"x-reference-list": "skills"}),
]
"""A volunteer skill, by its code in the skills list on `reference.events`. The message only
checks the code's form; whether it is a known, live skill is the gateway's check against the
list (docs/architecture.md, "Reference data"). Its JSON Schema names the list
(`x-reference-list`), which `GET /v1/schemas/{type}` fills in as an `enum` of the live codes."""

CategoryCode = Annotated[
    str,
    StringConstraints(pattern=CODE_PATTERN),
    Field(json_schema_extra={"x-reference-list": "categories"}),
]
"""What a need is for, by its code in the categories list on `reference.events` (see
`SkillCode`)."""


# The built-in categories and skills: the seed of the reference lists
# (services/domain/reference.py) and the vocabulary of the messages published before skills and
# categories became codes. Their docstrings are as published (they are in old JSON Schemas).
class Category(StrEnum):
    """What a need is for. Grows by adding members; a member is never removed or renamed."""

    ELDERLY_MEALS = "elderly_meals"  # 银发助餐
    ELDER_CARE = "elder_care"  # 养老服务
    CHILD_CARE = "child_care"  # 一老一小 / 四点半课堂
    TUTORING = "tutoring"  # 课业辅导
    EMERGENCY = "emergency"  # 应急救援 / 应急物资
    HARDSHIP_RELIEF = "hardship_relief"  # 困难群众帮扶
    VULNERABLE_CHILDREN = "vulnerable_children"  # 孤困儿童关爱
    LIVELIHOOD_PROJECT = "livelihood_project"  # 民生微实事
    HOME_WATCH = "home_watch"  # 看家守院
    MEDIATION = "mediation"  # 家门口的调解室
    NEW_WORKERS = "new_workers"  # 宁小蜂驿站
    CULTURE = "culture"  # 非遗、书香
    GENERAL = "general"


class Skill(StrEnum):
    """A volunteer skill a need may require. Grows by adding members."""

    DRIVING = "driving"
    FIRST_AID = "first_aid"
    ELDERLY_CARE = "elderly_care"
    TUTORING = "tutoring"
    COOKING = "cooking"
    MEAL_DELIVERY = "meal_delivery"
    CHILD_CARE = "child_care"
    LEGAL = "legal"
    COUNSELLING = "counselling"
    EMERGENCY_RESCUE = "emergency_rescue"
    PATROL = "patrol"
    GENERAL = "general"


class NeedKind(StrEnum):
    """Whether a need asks for volunteer time, money, or goods."""

    VOLUNTEER_HOURS = "volunteer_hours"
    MONEY = "money"
    GOODS = "goods"


class Urgency(StrEnum):
    """How soon a need must be met; matching serves higher urgency first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Larger is more urgent; used for ordering, never persisted."""
        return _URGENCY_RANK[self.value]


_URGENCY_RANK = {"low": 0, "normal": 1, "high": 2, "critical": 3}


class Role(StrEnum):
    """The part an actor plays in 五社联动 (five-party linkage)."""

    FOUNDATION = "foundation"
    COMMUNITY = "community"
    SOCIAL_ORG = "social_org"
    VOLUNTEER = "volunteer"
    AUDITOR = "auditor"
    SYSTEM = "system"


class Place(Frozen):
    """Where a need is, or where a volunteer lives: district, optionally street and community.

    Coordinates are optional and coarse (a community centre, never a home)."""

    district: PlaceName
    street: PlaceName | None = None
    community: PlaceName | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


MAX_WINDOW = timedelta(days=366)


class TimeWindow(Frozen):
    """A half-open interval [start, end) in aware UTC-comparable datetimes.

    Half-open, so that two shifts that touch (10:00–12:00 and 12:00–14:00) do not overlap."""

    start: Moment
    end: Moment

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError("window must not be longer than 366 days")
        return self

    @property
    def hours(self) -> float:
        """Length in hours (for display and limits; quantities on the wire are minutes)."""
        return (self.end - self.start).total_seconds() / 3600

    @property
    def minutes(self) -> int:
        """Length in whole minutes: the unit in which volunteer time is counted on the wire."""
        return int((self.end - self.start).total_seconds() // 60)

    def covers(self, other: TimeWindow) -> bool:
        """True when `other` lies entirely inside this window."""
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: TimeWindow) -> bool:
        """True when the two half-open windows share any instant."""
        return self.start < other.end and other.start < self.end
