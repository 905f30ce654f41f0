"""Encoding, decoding and upcasting: what is on the wire always loads as the newest model."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import DecodeError, decode, encode, upcast
from schemas.messages import NeedCancelled, NeedPosted, PostingRefused, Problem
from schemas.specs import NeedSpec
from tests import factories as f

pytestmark = pytest.mark.unit


def need_posted() -> NeedPosted:
    return NeedPosted(need_id=uuid.uuid4(), need=NeedSpec.model_validate(f.volunteer_need()))


def test_an_envelope_survives_encode_and_decode_with_chinese_text() -> None:
    env = f.envelope(need_posted())
    raw = encode(env)
    assert "银发助餐".encode() in raw  # characters, not \\u escapes
    back = decode(raw)
    assert back == env
    assert isinstance(back.payload, NeedPosted)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (b'{"event_type": "Nope", "schema_version": 1, "payload": {}}', "event_type"),
        (b'{"event_type": "PostingRefused", "schema_version": 0, "payload": {}}', "schema_version"),
        (b'{"event_type": "PostingRefused", "schema_version": 1}', "payload"),
        (
            b'{"event_type": "PostingRefused", "schema_version": 9, "payload": {}}',
            "newer than this",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            b'{"event_type": "PostingRefused", "schema_version": 2, "payload": {"x": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}}",
            "nested too deeply",
        ),
    ],
)
def test_undecodable_messages_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(raw)
    with pytest.raises(DecodeError, match=reason):
        decode(raw, "PostingRefused")  # a hint changes the path, never the answer


def test_a_validation_failure_names_fields_but_not_values() -> None:
    env = json.loads(encode(f.envelope(need_posted())))
    env["payload"]["need"]["people_served"] = -12345
    with pytest.raises(DecodeError) as exc:
        decode(json.dumps(env).encode())
    assert "payload.need.people_served" in exc.value.reason
    assert "-12345" not in exc.value.reason


def test_upcasters_run_in_a_chain_up_to_the_target_version() -> None:
    def v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
        return {"reason" if k == "why" else k: v for k, v in p.items()}

    def v2_to_v3(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "field": None}

    chain = {("PostingRefused", 1): v1_to_v2, ("PostingRefused", 2): v2_to_v3}
    out = upcast("PostingRefused", 1, {"why": "重复"}, chain, target=3)
    assert out == {"reason": "重复", "field": None}


def test_a_missing_upcaster_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(DecodeError, match="no upcaster from PostingRefused v1"):
        upcast("PostingRefused", 1, {}, {}, target=2)


texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() == s)


@given(reason=texts, field=st.one_of(st.none(), texts), posting_type=texts)
@settings(max_examples=200, deadline=None)
def test_any_valid_refusal_round_trips_unchanged(
    reason: str, field: str | None, posting_type: str
) -> None:
    import unicodedata

    payload = PostingRefused(
        posting_id=uuid.uuid4(),
        posting_type=posting_type[:80],
        problems=[Problem(field=field, reason=unicodedata.normalize("NFC", reason))],
    )
    env = f.envelope(payload)
    assert decode(encode(env)) == env


def test_a_stored_v1_refusal_loads_as_v2() -> None:
    v2 = json.loads(
        encode(
            f.envelope(
                PostingRefused(
                    posting_id=uuid.uuid4(),
                    posting_type="PostNeed",
                    problems=[Problem(field="need.deadline", reason="截止时间已过")],
                )
            )
        )
    )
    v1 = {
        **v2,
        "schema_version": 1,
        "payload": {
            "posting_id": v2["payload"]["posting_id"],
            "posting_type": "PostNeed",
            "reason": "截止时间已过",
            "field": "need.deadline",
        },
    }
    assert decode(json.dumps(v1).encode()).payload == decode(json.dumps(v2).encode()).payload


@pytest.mark.parametrize("version", ['"{}"', "{}.0", "true"])
def test_a_version_that_is_not_an_integer_is_refused_with_or_without_the_hint(
    version: str,
) -> None:
    env = f.envelope(NeedCancelled(need_id=uuid.uuid4(), reason="活动取消"))
    assert env.schema_version == 1  # so that `true` would pass for it if it were taken as 1
    raw = encode(env)
    current = f'"schema_version":{env.schema_version}'.encode()
    assert current in raw
    bad = raw.replace(current, f'"schema_version":{version.format(env.schema_version)}'.encode())
    with pytest.raises(DecodeError, match="schema_version"):
        decode(bad)
    with pytest.raises(DecodeError, match="schema_version"):
        decode(bad, env.event_type)
