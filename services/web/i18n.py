"""Message catalogues and formatting for the web app: zh-CN by default, English one click away.

Every string a page shows comes from `locales/<lang>/LC_MESSAGES/messages.po` by a symbolic key
(`nav.funds`), never from the templates, so adding a language is adding one catalogue (see
docs/web.md). Money is integer fen shown as yuan with two decimals; times are shown in
Asia/Shanghai, formatted for the language by Babel.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = {"zh-CN": "zh_CN", "en": "en"}
"""Language tags the app offers (the `lang` attribute of each page) → Babel locale names."""
DEFAULT = "zh-CN"
ZONE = ZoneInfo("Asia/Shanghai")


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Key → text for one language, read once from its .po file."""
    path = LOCALES / LANGUAGES[lang] / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        po = read_po(f, locale=LANGUAGES[lang])
    return {str(m.id): str(m.string) for m in po if m.id and m.string}


def pick(requested: str | None, accept_language: str = "") -> str:
    """The language to answer in: the person's choice, else zh-CN (the default even for a
    browser that prefers English: the exchange serves Nanjing; English is one click away)."""
    return requested if requested in LANGUAGES else DEFAULT


class Translator:
    """`t("key", name=...)` for one language; a missing key shows itself, never a blank."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.locale = LANGUAGES[lang]
        self.messages = catalogue(lang)

    def __call__(self, key: str, **values: object) -> str:
        text = self.messages.get(key, key)
        return text.format(**values) if values else text

    def money(self, amount_minor: int, currency: str = "CNY") -> str:
        """¥1,234.50 from 123450 fen (integer arithmetic; no float ever touches money)."""
        value = Decimal(abs(amount_minor)).scaleb(-2)
        symbol = "¥" if currency == "CNY" else f"{currency} "
        sign = "-" if amount_minor < 0 else ""
        return sign + symbol + format_decimal(value, format="#,##0.00", locale=self.locale)

    def when(self, moment: datetime | str | None) -> str:
        """A moment in Nanjing time, formatted for the language."""
        if moment is None or moment == "":
            return ""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return format_datetime(moment, format="medium", tzinfo=ZONE, locale=self.locale)
