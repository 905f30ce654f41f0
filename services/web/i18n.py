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

from schemas.reference import TermKind
from services.domain.reference import Terms

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


TERM_KEYS = {"category.": TermKind.CATEGORY, "skill.": TermKind.SKILL}
"""Keys whose text comes from the reference lists (`category.<code>`, `skill.<code>`)."""


def terms_of(state: object) -> Terms | None:
    """The reference lists the gateway last loaded (`app.state`), for labels; None outside
    a gateway (the catalogue's labels of the built-in terms are then used)."""
    cache = getattr(state, "reference", None)
    return getattr(cache, "last", None)


class Translator:
    """`t("key", name=...)` for one language; a missing key shows itself, never a blank.

    A skill's or a category's label (`category.<code>`) comes from the reference lists, in the
    page's language (zh for zh-CN, en otherwise), so terms defined at run time are shown by
    name; the catalogue's labels are the fallback when the lists are not at hand."""

    def __init__(self, lang: str, terms: Terms | None = None) -> None:
        self.lang = lang
        self.locale = LANGUAGES[lang]
        self.messages = catalogue(lang)
        self.terms = terms

    def __call__(self, key: str, **values: object) -> str:
        text = self._term(key) or self.messages.get(key, key)
        return text.format(**values) if values else text

    def _term(self, key: str) -> str | None:
        if self.terms is None:
            return None
        for prefix, kind in TERM_KEYS.items():
            if key.startswith(prefix):
                term = self.terms.get(kind, key.removeprefix(prefix))
                return term.label("zh" if self.lang == "zh-CN" else "en") if term else None
        return None

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
