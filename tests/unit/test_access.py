"""The broker ACLs and the producer check come from the topic registry: every topic has exactly
one writer principal, the registry's owner, and nothing else may write it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from schemas.topics import ALL_TOPICS, FUNDS_EVENTS
from services.platform.access import (
    AUDITOR_PRINCIPAL,
    RESTORE_PRINCIPAL,
    acl_grants,
    kafka_acls_commands,
    principal_of,
    producer_problem,
    service_principals,
    strimzi_users,
    writers_by_topic,
)


def test_every_topic_has_exactly_one_writer_principal_its_registered_owner() -> None:
    writers = writers_by_topic(acl_grants())
    assert set(writers) == {t.name for t in ALL_TOPICS}
    for spec in ALL_TOPICS:
        assert writers[spec.name] == {f"User:{spec.owner}"}, spec.name


def test_only_the_restore_job_writes_beyond_its_own_topics_and_the_auditor_writes_nothing() -> None:
    grants = acl_grants()
    writes = {(g.principal, g.name) for g in grants if g.operation == "Write"}
    assert {n for p, n in writes if p == f"User:{RESTORE_PRINCIPAL}"} == {
        t.name for t in ALL_TOPICS
    }
    assert not any(p == f"User:{AUDITOR_PRINCIPAL}" for p, _ in writes)
    # the funds topic of the issue: intake-donations alone, the gateway cannot
    assert ("User:gateway", FUNDS_EVENTS.name) not in writes
    assert ("User:intake-donations", FUNDS_EVENTS.name) in writes


def test_reads_follow_the_processors_and_groups_their_app_ids() -> None:
    by_name = {sp.name: sp for sp in service_principals()}
    assert by_name["gateway"].reads == ()
    assert "donations.postings" in by_name["intake-donations"].reads
    assert "needs.postings" not in by_name["intake-donations"].reads
    assert set(by_name["matcher"].groups) == {"matcher", "matcher-router"}
    assert set(by_name["ledger"].reads) == {t.name for t in ALL_TOPICS}
    assert by_name["ledger"].groups == ()  # assigns its partitions; no group to allow


def test_every_service_process_writes_as_its_registry_principal() -> None:
    from services import SERVICES

    owners = {t.owner for t in ALL_TOPICS}
    for service in SERVICES:
        assert principal_of(service) in owners, service
    assert principal_of("matcher-router") == principal_of("matcher-7") == "matcher"


@pytest.mark.parametrize(
    ("headers", "flagged"),
    [
        ([("producer", b"intake-donations")], False),
        ([("producer", b"gateway")], True),
        ([], True),
        ([["producer", "intake-donations"]], False),  # as the archive's jsonb holds them
    ],
)
def test_producer_problem(headers: list, flagged: bool) -> None:
    assert (producer_problem("funds.events", headers) is not None) is flagged
    assert producer_problem("intake-donations-__assignor-__leader", []) is None  # not ours


def test_the_generated_outputs_say_the_same() -> None:
    grants = acl_grants()
    lines = kafka_acls_commands(grants)
    donations = "--allow-principal User:intake-donations --operation Write"
    writes = [line for line in lines if donations in line and "type literal" in line]
    assert len(writes) == 1 and "--topic funds.events " in writes[0]  # faust's own: prefixed
    assert not any("User:gateway --operation Write" in x and "funds.events " in x for x in lines)
    users = strimzi_users(grants)
    names = {u["metadata"]["name"] for u in users}  # type: ignore[index]
    assert {"gateway", "ledger", "matcher", RESTORE_PRINCIPAL, AUDITOR_PRINCIPAL} <= names
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "topics", "--acls", "strimzi"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [json.loads(d) for d in out.split("---\n") if d.strip()]
    assert docs == users
