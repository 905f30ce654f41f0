"""The relay and a broker replaced under it: nothing is marked published that the new broker
cannot give back.

Tansu 0.6 keeps nothing across a restart, and it acknowledges a Produce for a topic it does not
have (offset 0) while the record can never be read. The gateway's producer keeps the old
broker's metadata, so its first Produce to an empty broker on the same address was exactly that:
the posting was marked published and was on no topic (the intermittent failure of
test_gateway_broker_down.py, when the relay's retry came before the test's `ensure_topics`).
Here the new broker has no topics until the test creates them, so the relay's attempts are
always against a broker without them: deterministic."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from schemas.messages import OrgKind
from services.embedded.broker import EmbeddedBroker
from services.gateway.relay import Relay
from services.platform.kafka import ensure_topics, read_all
from tests import factories as f
from tests.integration.conftest import all_published, org_token, query, wait_until

pytestmark = pytest.mark.integration

TOPIC = "needs.postings"


def relay_of(client: TestClient) -> Relay:
    relay: Relay = client.app.state.postings.relay  # type: ignore[attr-defined]
    return relay


def topics_on(bootstrap: str) -> set[str]:
    """The broker's topics, asked without creating any (a Metadata request for all topics)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def replace_broker(broker: EmbeddedBroker, log: Path) -> EmbeddedBroker:
    """Kill `broker` and start an empty one on the same address (Tansu forgets everything)."""
    broker.process.kill()
    broker.process.wait()
    return EmbeddedBroker.start(log, port=broker.port)


def published(dsn: str, posting_id: str) -> bool:
    return bool(
        query(
            dsn,
            "SELECT published_at IS NOT NULL FROM postings WHERE posting_id = $1::uuid",
            posting_id,
        )
    )


def post_need(client: TestClient, headers: dict[str, str], title: str) -> str:
    r = client.post("/v1/needs", json=f.volunteer_need(title=title), headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["posting_id"])


def test_a_posting_is_not_marked_published_on_a_broker_that_lacks_its_topic(
    client: TestClient, broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    community = {
        "Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '江东社区')}"
    }
    relay = relay_of(client)
    # Given a relay that has published (its producer knows the old broker's topics)
    post_need(client, community, "之前")
    wait_until(lambda: all_published(database_url), 10, "the first posting is published")
    # When the broker is replaced by an empty one and a posting arrives
    back = replace_broker(broker, tmp_path / "back.log")
    try:
        failures = relay.failures
        posting = post_need(client, community, "换了代理之后")
        # Then the relay tries again and again, and marks nothing while the topic is missing
        wait_until(
            lambda: published(database_url, posting) or relay.failures >= failures + 3,
            30,
            "the relay has tried the new broker several times",
        )
        assert not published(database_url, posting), "marked published on a broker without it"
        assert TOPIC not in topics_on(back.bootstrap), "the relay created the topic itself"
        # When the topics are created as registered
        ensure_topics(back.bootstrap)
        # Then the posting is published, and it is on its topic
        wait_until(lambda: published(database_url, posting), 30, "published once topics exist")
        on_topic = {r.event_id for r in read_all(back.bootstrap, [TOPIC])}
        assert uuid.UUID(posting) in on_topic
    finally:
        back.process.kill()
        back.process.wait()


def test_a_topic_with_another_partition_count_than_registered_is_refused(
    client: TestClient, broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    community = {
        "Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '江东社区')}"
    }
    relay = relay_of(client)
    post_need(client, community, "之前")
    wait_until(lambda: all_published(database_url), 10, "the first posting is published")
    # Given a new broker whose needs topic has 2 partitions where the registry says 4
    back = replace_broker(broker, tmp_path / "back.log")
    try:
        admin = KafkaAdminClient(bootstrap_servers=back.bootstrap, client_id="test-admin")
        try:
            admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=-1)])
        finally:
            admin.close()
        failures = relay.failures
        posting = post_need(client, community, "分区数不对")
        # Then the relay refuses to publish to it (keys would land on the wrong partitions)
        wait_until(
            lambda: published(database_url, posting) or relay.failures >= failures + 3,
            30,
            "the relay has tried the new broker several times",
        )
        assert not published(database_url, posting), "published onto a mis-partitioned topic"
        assert not list(read_all(back.bootstrap, [TOPIC]))
    finally:
        back.process.kill()
        back.process.wait()
