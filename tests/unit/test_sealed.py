"""Sealed text opens only with its subject's key, for its subject; without the key it is the
forgotten marker, never the ciphertext or an error (docs/privacy.md)."""

from __future__ import annotations

import uuid

import pytest

from schemas.codec import decode, encode
from schemas.common import Place
from schemas.messages import VolunteerRegistered
from schemas.sealed import (
    FORGOTTEN,
    UNREADABLE,
    Sealed,
    new_key,
    open_sealed,
    parse_sealed,
    reveal,
    reveal_json,
    seal,
    subject_of,
    subjects_in,
)
from tests import factories as f

pytestmark = pytest.mark.unit

VOL = uuid.uuid4()
SUBJECT = subject_of("volunteer", VOL)


def test_sealed_text_opens_with_its_key_and_is_forgotten_without_it() -> None:
    key = new_key()
    value = seal("王师傅", SUBJECT, key)
    assert "王师傅" not in value.model_dump_json()
    assert open_sealed(value, key) == "王师傅"
    assert open_sealed(value, None) == FORGOTTEN
    assert open_sealed(value, new_key()) == UNREADABLE
    assert seal("王师傅", SUBJECT, key) != value, "a fresh nonce each time"


def test_a_ciphertext_moved_to_another_subject_does_not_open() -> None:
    key = new_key()
    value = seal("王师傅", SUBJECT, key)
    other = subject_of("volunteer", uuid.uuid4())
    moved = value.model_copy(update={"subject": other})
    assert open_sealed(moved, key) == UNREADABLE, "the subject is authenticated data"
    assert open_sealed(value, key, expected_subject=other) == UNREADABLE


def test_a_sealed_event_round_trips_and_reveals_only_with_the_key() -> None:
    key = new_key()
    event = VolunteerRegistered(
        volunteer_id=VOL, pseudonym=seal("王师傅", SUBJECT, key), home=Place(district="鼓楼区")
    )
    env = decode(encode(f.envelope(event)))
    assert isinstance(env.payload, VolunteerRegistered)
    assert isinstance(env.payload.pseudonym, Sealed)
    assert "王师傅".encode() not in encode(env)
    assert reveal(env.payload.pseudonym, {SUBJECT: key}) == "王师傅"
    assert reveal(env.payload.pseudonym, {}) == FORGOTTEN
    assert reveal("老张", {}) == "老张", "plain text from before sealing stays as it is"


def test_json_values_are_revealed_wherever_a_sealed_value_sits() -> None:
    key = new_key()
    spec = {"title": "送餐", "description": seal("独居老人", SUBJECT, key).model_dump(mode="json")}
    assert subjects_in({"a": [spec]}) == {SUBJECT}
    assert reveal_json(spec, {SUBJECT: key}) == {"title": "送餐", "description": "独居老人"}
    assert reveal_json(spec, {}) == {"title": "送餐", "description": FORGOTTEN}


def test_plain_text_that_only_looks_sealed_stays_plain() -> None:
    assert parse_sealed('{"sealed":"v1", but not really') is None
    assert parse_sealed("王师傅") is None
    stored = seal("王师傅", SUBJECT, new_key()).model_dump_json()
    assert parse_sealed(stored) is not None
