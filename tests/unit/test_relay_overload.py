"""When the gateway sheds postings: the relay behind by more than its limit while the broker
answers (services/gateway/relay.py, `Relay.overloaded`); pure, on given times."""

from __future__ import annotations

import uuid
from typing import Any, cast

from services.gateway.relay import Relay, Unpublished


def relay(now: list[float], limit: float = 2.0) -> Relay:
    return Relay(cast(Any, None), cast(Any, None), {}, behind_limit=limit, clock=lambda: now[0])


def row() -> Unpublished:
    return Unpublished(uuid.uuid4(), "needs.postings", b"k", b"{}", "NeedPosted")


def test_a_relay_behind_while_the_broker_answers_is_overloaded() -> None:
    now = [100.0]
    r = relay(now)
    r.hand_over(row())
    r._last_ack = 100.5  # a batch was acknowledged meanwhile
    now[0] = 102.0
    assert r.behind() == 2.0 and not r.overloaded()  # at the limit: still accepted
    now[0] = 102.1
    assert r.overloaded()


def test_a_relay_that_never_published_or_whose_last_attempt_failed_is_not_overloaded() -> None:
    now = [0.0]
    r = relay(now)
    r.hand_over(row())
    now[0] = 10.0
    assert r.behind() == 10.0 and not r.overloaded()  # the broker never answered: outage
    r._last_ack = 9.0
    assert r.overloaded()
    r._last_failure = 9.5  # the broker went away: postings wait in the outbox
    assert not r.overloaded()


def test_a_stalled_broker_is_an_outage_not_an_overload() -> None:
    now = [0.0]
    r = relay(now)
    r.hand_over(row())
    r._last_ack = 0.5
    now[0] = 4.4  # acknowledgements stopped 3.9 s ago: within twice the limit
    assert r.overloaded()
    now[0] = 4.6  # silent for longer: a SIGSTOPped broker, not a busy one
    assert not r.overloaded()


def test_nothing_pending_or_no_limit_is_never_overloaded() -> None:
    now = [0.0]
    r = relay(now)
    r._last_ack = 0.0
    now[0] = 1.0
    assert r.behind() == 0.0 and not r.overloaded()
    off = relay(now, limit=0.0)
    off.hand_over(row())
    off._last_ack = 0.9
    now[0] = 60.0
    off._last_ack = 59.9
    assert not off.overloaded()
