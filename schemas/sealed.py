"""Sealed text: free text about a person, encrypted under a key that belongs to that person.

The log is append-only and hash-chained, so it can never delete what it holds. What it can do is
hold personal text only as ciphertext under a per-subject key kept *outside* the log (PostgreSQL
`subject_keys`, never on a topic or in the archive). Deleting the key forgets the text
everywhere at once (crypto-shredding), while every hash, signature and replay stays valid,
because they cover the ciphertext, which never changes. docs/privacy.md has the design.

A subject is `volunteer:<id>`, `need:<id>` or `donation:<id>`. AES-256-GCM, a random 96-bit
nonce per value, and the subject as associated data: a ciphertext copied into another
subject's event does not open under that subject's key, and readers check the subject they
expect (`open_sealed`).

Pure apart from the random nonce and key; sealing happens once, at the gateway, and every
derived event copies the sealed value byte for byte, so decisions and replays never need a key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from typing import Annotated, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, ValidationError

from schemas.common import Frozen

__all__ = [
    "FORGOTTEN",
    "Sealed",
    "SealedDonation",
    "new_key",
    "open_sealed",
    "reveal",
    "seal",
    "subject_of",
]

SUBJECT_KINDS = ("volunteer", "need", "donation")
SUBJECT_PATTERN = r"^(volunteer|need):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
DONATION_SUBJECT_PATTERN = (
    r"^donation:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
_B64 = r"^[A-Za-z0-9+/]*={0,2}$"
_AAD_TAG = b"community-exchange/sealed/v1\x00"
KEY_BYTES = 32
NONCE_BYTES = 12

FORGOTTEN = "（已遗忘）[forgotten]"
"""What people are shown where sealed text was, once its subject's key is deleted."""

UNREADABLE = "（无法解密）[unreadable]"
"""What people are shown for a sealed value whose key exists but does not open it (a value
copied from another subject, or damaged): never the ciphertext."""


class Sealed(Frozen):
    """Personal free text, encrypted (AES-256-GCM) under its subject's key, which is kept outside
    the log. Once the key is deleted the text is gone for good; the ciphertext stays in the log
    and the hash chain still verifies. The text itself is UTF-8 inside the ciphertext."""

    sealed: Literal["v1"] = "v1"
    subject: Annotated[str, Field(pattern=SUBJECT_PATTERN)]
    nonce: Annotated[str, Field(min_length=16, max_length=16, pattern=_B64)]
    ciphertext: Annotated[str, Field(min_length=24, max_length=12_000, pattern=_B64)]


class SealedDonation(Sealed):
    """A donor's label or a donation's note, encrypted (AES-256-GCM) under the donation's own
    key, which is kept outside the log. Once the key is deleted the text is gone for good."""

    # A subclass rather than a wider `Sealed` subject pattern: `Sealed`'s published schemas
    # (volunteer and need subjects) must keep accepting exactly what they accepted.
    subject: Annotated[str, Field(pattern=DONATION_SUBJECT_PATTERN)]


def subject_of(kind: Literal["volunteer", "need", "donation"], subject_id: uuid.UUID) -> str:
    """The subject name of a volunteer, a need or a donation: what its key and its sealed
    values are under."""
    return f"{kind}:{subject_id}"


def new_key() -> bytes:
    """A fresh random AES-256 key for one subject."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _aad(subject: str) -> bytes:
    return _AAD_TAG + subject.encode()


def seal(text: str, subject: str, key: bytes) -> Sealed:
    """Encrypt `text` for `subject` under its key. A fresh nonce each time: the same text
    sealed twice gives two different values, so equal ciphertexts tell nothing."""
    if re.fullmatch(DONATION_SUBJECT_PATTERN, subject):
        kind: type[Sealed] = SealedDonation
    elif re.fullmatch(SUBJECT_PATTERN, subject):
        kind = Sealed
    else:
        raise ValueError(f"not a subject: {subject!r}")
    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(key).encrypt(nonce, text.encode("utf-8"), _aad(subject))
    return kind(
        subject=subject,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(ct).decode(),
    )


def open_sealed(value: Sealed, key: bytes | None, expected_subject: str | None = None) -> str:
    """The text of a sealed value; `FORGOTTEN` when there is no key (any more), `UNREADABLE`
    when the key does not open it or it is not about `expected_subject`."""
    if expected_subject is not None and value.subject != expected_subject:
        return UNREADABLE
    if key is None:
        return FORGOTTEN
    try:
        nonce = base64.b64decode(value.nonce, validate=True)
        ct = base64.b64decode(value.ciphertext, validate=True)
        return AESGCM(key).decrypt(nonce, ct, _aad(value.subject)).decode("utf-8")
    except (InvalidTag, ValueError, binascii.Error):
        return UNREADABLE


def reveal(
    value: Sealed | str | None, keys: dict[str, bytes], expected_subject: str | None = None
) -> str | None:
    """Text for people: plain text as it is (written before sealing existed: not erasable),
    a sealed value opened with its subject's key from `keys`, or the forgotten marker."""
    if value is None or isinstance(value, str):
        return value
    return open_sealed(value, keys.get(value.subject), expected_subject)


def parse_sealed(value: object) -> Sealed | None:
    """A sealed value stored as JSON (a dict from jsonb, or the text of a read-model column),
    else None: plain text stays plain."""
    for kind in (Sealed, SealedDonation):
        try:
            if isinstance(value, dict) and value.get("sealed") == "v1":
                return kind.model_validate(value)
            if isinstance(value, str) and value.startswith('{"sealed":"v1"'):
                return kind.model_validate_json(value)
        except ValidationError:
            continue  # another kind of subject, or plain text that merely looks sealed
    return None


def subjects_in(value: object) -> set[str]:
    """Every subject whose sealed values occur anywhere inside a JSON-like value."""
    found: set[str] = set()
    sealed = parse_sealed(value)
    if sealed is not None:
        found.add(sealed.subject)
    elif isinstance(value, dict):
        for item in value.values():
            found |= subjects_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= subjects_in(item)
    return found


def reveal_json(value: object, keys: dict[str, bytes]) -> object:
    """A JSON-like value with every sealed value in it replaced by its text (or the marker)."""
    sealed = parse_sealed(value)
    if sealed is not None:
        return open_sealed(sealed, keys.get(sealed.subject))
    if isinstance(value, dict):
        return {k: reveal_json(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal_json(v, keys) for v in value]
    return value
