"""Finding personal data in free text before it can reach the permanent log.

The log is append-only and hash-chained: what enters it cannot be taken out. So a phone number,
a resident ID, a landline, an e-mail address or a bank card number typed into a need's
description, a fund's name, a donor label or a pseudonym is refused at the door, with the field
named. The detectors are tuned to the forms people really type in China: full-width digits
(１３８…), digits broken up by spaces, dashes or brackets, a +86 prefix, and labels such as 电话,
手机, 身份证号 or 卡号 in front.

Every detector lives here, once, so the gateway, the intake services and the tests agree.
Pure Python, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Finding", "find_personal_data", "luhn_is_valid", "resident_id_is_valid"]


@dataclass(frozen=True)
class Finding:
    """What kind of personal data was found, and a short reason for the person who typed it."""

    kind: str
    reason: str


_SEPARATORS = " \t\u00a0\u3000-–—‐‑−()（）.·"
_DIGIT_RUN = re.compile(
    r"(?:\+|00)?(?:86)?[\s\-–—‐‑−(（]*\d(?:[\d" + re.escape(_SEPARATORS) + r"]*[\dXx])?"
)
_MACHINE_TOKEN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{12,}"
)
"""UUIDs and long hexadecimal strings (hashes, generated keys): machine identifiers, whose
digits joined by dashes would otherwise read as phone or card numbers. Idempotency keys are
mostly UUIDs."""
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+", re.UNICODE)
_LABEL = re.compile(
    r"(电话|手机|手机号|联系电话|联系方式|座机|热线|tel|phone|mobile|微信|qq|"
    r"身份证|身份证号|证件号|卡号|银行卡|账号|帐号|账户|account)",
    re.IGNORECASE,
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_is_valid(number: str) -> bool:
    """An 18-character mainland resident ID whose last character is its ISO 7064 MOD 11-2
    check digit, and whose region and birth date are plausible."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != number[17].upper():
        return False
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    return number[0] in "123456789" and 1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31


def luhn_is_valid(digits: str) -> bool:
    """The Luhn checksum every bank card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits_of(run: str) -> tuple[str, bool]:
    """The digits of a run (with a trailing X kept), and whether it began with a country code."""
    international = run.startswith(("+", "00"))
    kept = "".join(ch for ch in run if ch.isdigit() or ch in "Xx")
    return kept, international


def _classify(digits: str, international: bool, labelled: bool) -> Finding | None:
    bare = digits
    if international or (len(digits) == 13 and digits.startswith("86")):
        bare = (
            digits[4:]
            if digits.startswith("0086")
            else digits[2:]
            if digits.startswith("86")
            else digits
        )
    if re.fullmatch(r"1[3-9]\d{9}", bare):
        return Finding("mobile", "contains a mobile phone number / 含手机号码")
    if len(digits) == 18 and resident_id_is_valid(digits):
        return Finding("resident_id", "contains a resident ID number / 含身份证号码")
    if "X" in digits.upper():
        if labelled and len(digits) in (15, 18):
            return Finding("resident_id", "contains a resident ID number / 含身份证号码")
        return None
    if re.fullmatch(r"0[1-9]\d{1,2}[2-9]\d{6,7}", bare):
        return Finding("landline", "contains a landline number / 含固定电话号码")
    if 16 <= len(digits) <= 19 and luhn_is_valid(digits):
        return Finding("bank_card", "contains a bank card number / 含银行卡号")
    if labelled and len(digits) >= 7:
        return Finding("number", "contains a phone, ID or account number / 含电话、证件或账户号码")
    return None


def find_personal_data(text: str) -> Finding | None:
    """The first piece of personal data in `text`, or None.

    Full-width forms are folded first (NFKC), so １３８１２３４５６７８ is seen as 13812345678.
    A number counts as labelled when a label such as 电话 or 身份证号 stands within a few
    characters before it; a labelled number of seven digits or more is refused whatever its
    shape, since the label says what it is."""
    if not text:
        return None
    folded = _MACHINE_TOKEN.sub(" ", unicodedata.normalize("NFKC", text))
    if _EMAIL.search(folded):
        return Finding("email", "contains an e-mail address / 含电子邮箱地址")
    for match in _DIGIT_RUN.finditer(folded):
        digits, international = _digits_of(match.group())
        if len(digits) < 7:
            continue
        before = folded[max(0, match.start() - 8) : match.start()]
        found = _classify(digits, international, bool(_LABEL.search(before)))
        if found is not None:
            return found
    return None
