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


def test_donor_labels_and_notes_are_sealed_under_the_donation_and_old_ones_stay_plain() -> None:
    from schemas.legacy import BEFORE_SEALING_MORE
    from schemas.messages import DonationReceived
    from schemas.sealed import SealedDonation

    don = uuid.uuid4()
    subject, key = subject_of("donation", don), new_key()
    label = seal("张阿姨", subject, key)
    assert isinstance(label, SealedDonation) and parse_sealed(label.model_dump()) == label
    gift = f.donation(donor=label.model_dump(), note=seal("为母亲祈福", subject, key).model_dump())
    env = f.envelope(DonationReceived(fund_id=uuid.uuid4(), donation_id=don, donation=gift))
    back = decode(encode(env)).payload
    assert isinstance(back, DonationReceived) and "张阿姨" not in encode(env).decode()
    assert reveal(back.donation.donor, {subject: key}, subject) == "张阿姨"
    assert reveal(back.donation.note, {}, subject) == FORGOTTEN
    # a volunteer's or a need's sealed value never takes a donation subject (their published
    # schemas are unchanged), and a donation's never takes theirs
    with pytest.raises(ValueError):
        Sealed.model_validate(label.model_dump())
    with pytest.raises(ValueError):
        SealedDonation.model_validate(seal("x", SUBJECT, key).model_dump())
    # a donation recorded before sealing reads as the current model, its text plain
    old = BEFORE_SEALING_MORE["DonationReceived.v1"](
        fund_id=uuid.uuid4(), donation_id=don, donation=f.donation(note="备注")
    )
    now = decode(encode(f.envelope(old))).payload
    assert isinstance(now, DonationReceived) and now.donation.note == "备注"


def test_volunteers_reasons_are_sealed_under_the_volunteer() -> None:
    from schemas.legacy import BEFORE_SEALING_MORE
    from schemas.messages import MatchDeclined, PledgeWithdrawn

    key = new_key()
    env = f.envelope(PledgeWithdrawn(volunteer_id=VOL, reason=seal("搬家了", SUBJECT, key)))
    back = decode(encode(env)).payload
    assert isinstance(back, PledgeWithdrawn) and "搬家了" not in encode(env).decode()
    assert reveal(back.reason, {SUBJECT: key}, SUBJECT) == "搬家了"
    assert reveal(back.reason, {}, SUBJECT) == FORGOTTEN
    old = BEFORE_SEALING_MORE["MatchDeclined.v1"](
        match_id=uuid.uuid4(), need_id=uuid.uuid4(), reason="那天有事"
    )
    now = decode(encode(f.envelope(old))).payload
    assert isinstance(now, MatchDeclined) and now.reason == "那天有事"
