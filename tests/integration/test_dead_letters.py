"""A poison message goes to the topic's dead-letter topic with the reason; the stream goes on."""

from __future__ import annotations

import uuid

import pytest

from schemas.codec import decode, encode
from schemas.messages import MessageDeadLettered, NeedPosted, PostNeed
from schemas.specs import NeedSpec
from services.embedded.broker import EmbeddedBroker
from services.intake.processor import KINDS, IntakeProcessor
from services.platform.kafka import ensure_topics, headers_for, producer, read_all
from services.platform.processor import catch_up
from tests import factories as f

pytestmark = pytest.mark.integration


def test_poison_is_parked_with_its_reason_and_valid_postings_still_flow(
    broker: EmbeddedBroker,
) -> None:
    ensure_topics(broker.bootstrap)
    need_id = uuid.uuid4()
    good = f.envelope(
        PostNeed(need_id=need_id, need=NeedSpec.model_validate(f.volunteer_need())),
        at=f.T0.replace(year=2026, month=12, day=1),
    )
    w = producer(broker.bootstrap)
    w.send("needs.postings", key=b"poison", value=b"{not json", partition=0)
    w.send(
        "needs.postings",
        key=b"wrong",
        partition=0,
        value=encode(f.envelope(NeedPosted(need_id=need_id, need=good.payload.need))),
    )  # type: ignore[attr-defined]
    w.send(
        "needs.postings",
        key=str(need_id).encode(),
        value=encode(good),
        partition=0,
        headers=headers_for(good.event_id, good.event_type),
    )
    w.flush()
    w.close()

    assert catch_up(broker.bootstrap, IntakeProcessor(KINDS["intake-needs"])) == 3

    dead = [decode(r.value).payload for r in read_all(broker.bootstrap, ["needs.postings.dlq"])]
    assert all(isinstance(d, MessageDeadLettered) for d in dead)
    assert [d.consumer for d in dead] == ["intake-needs", "intake-needs"]  # type: ignore[attr-defined]
    assert [d.reason for d in dead] == [  # type: ignore[attr-defined]
        "not UTF-8 JSON: JSONDecodeError",
        "event_type: NeedPosted does not belong on needs.postings",
    ]
    assert bytes.fromhex(dead[0].original_value_hex) == b"{not json"  # type: ignore[attr-defined]
    [event] = [decode(r.value) for r in read_all(broker.bootstrap, ["needs.events"])]
    assert isinstance(event.payload, NeedPosted) and event.payload.need_id == need_id

    # a second start replays the same input and writes nothing new
    assert catch_up(broker.bootstrap, IntakeProcessor(KINDS["intake-needs"])) == 0
    assert len(list(read_all(broker.bootstrap, ["needs.postings.dlq", "needs.events"]))) == 3
