"""The web app's catalogues and formatting: every key a page uses exists in every language,
money is exact, times are Nanjing's."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.common import Category, Role, Skill, Urgency
from schemas.specs import TravelRange
from services.web.i18n import LANGUAGES, Translator, catalogue, pick
from services.web.routes import SLOTS, BadForm, availability, fen, moment

WEB = Path(__file__).resolve().parents[2] / "services" / "web"
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-zA-Z_.\-]+)["']""")
PREFIXED_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.)["']\s*~""")


def test_every_language_has_the_same_keys() -> None:
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    first = keys["zh-CN"]
    for lang, got in keys.items():
        assert got == first, f"{lang}: missing {first - got}, extra {got - first}"


def test_every_key_the_pages_use_is_in_the_catalogues() -> None:
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        used |= set(LITERAL_KEY.findall(text))
        prefixes |= set(PREFIXED_KEY.findall(text))
    used |= {f"error.{k}" for k in ("amount", "moment", "minutes", "csrf", "not_found")}
    used |= {f"category.{c.value}" for c in Category} | {f"skill.{s.value}" for s in Skill}
    used |= {f"urgency.{u.value}" for u in Urgency} | {f"lang.{code}" for code in LANGUAGES}
    used |= {f"role.{r.value}" for r in Role} | {f"weekday.{d}" for d in range(7)}
    used |= {f"slot.{s}" for s in SLOTS} | {f"travel.{r.value}" for r in TravelRange}
    used |= {"error.availability", "error.not_yours", "error.number"}
    used |= {f"pledge_status.{s}" for s in ("registered", "active", "withdrawn")}
    missing = sorted(k for k in used if k not in catalogue("zh-CN"))
    assert not missing, missing
    known = {"category.", "skill.", "urgency.", "status.", "match.", "lang.", "role.", "event."}
    assert known | {"weekday.", "slot.", "travel.", "fund.", "pledge_status."} >= prefixes


def test_money_is_exact_fen_shown_as_yuan() -> None:
    assert Translator("zh-CN").money(123450) == "¥1,234.50"
    assert Translator("en").money(5) == "¥0.05"
    assert Translator("en").money(-800_000) == "-¥8,000.00"
    assert fen("1,234.5", "amount") == 123450
    assert fen(" 8000 ", "amount") == 800000
    assert fen("0.07", "amount") == 7
    for bad in ("12.345", "abc", "-3", "1e3", ""):
        with pytest.raises(BadForm):
            fen(bad, "amount")


def test_times_are_shown_and_read_in_nanjing() -> None:
    noon_utc = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
    assert "12:00" in Translator("zh-CN").when(noon_utc)
    assert moment("2026-12-05", "12:00", "x") == "2026-12-05T12:00:00+08:00"
    with pytest.raises(BadForm):
        moment("2026-13-01", "10:00", "x")


def test_chinese_is_the_default_and_english_one_choice_away() -> None:
    assert pick(None) == "zh-CN"
    assert pick("fr") == "zh-CN"
    assert pick("en") == "en"
    assert Translator("en")("need.filled", filled=1, wanted=2) == "1 of 2 met"
    assert Translator("zh-CN")("no.such.key") == "no.such.key"


def test_the_language_switch_only_goes_back_to_this_site() -> None:
    from services.web.routes import local_path

    assert local_path("/home?posted=1") == "/home?posted=1"
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example", "", "/\thome"):
        assert local_path(elsewhere) == "/"


def test_the_weekly_grid_becomes_windows_over_the_next_two_weeks_in_nanjing() -> None:
    from datetime import date

    windows = availability(["2-morning", "6-evening"], date(2026, 12, 2))  # a Wednesday
    assert len(windows) == 4  # two Wednesdays, two Sundays
    assert windows[0]["start"] == "2026-12-06T18:00:00+08:00"  # Sunday evening comes first
    assert windows[1] == {
        "start": "2026-12-09T08:00:00+08:00",
        "end": "2026-12-09T12:00:00+08:00",
    }
    assert availability([], date(2026, 12, 2)) == []
