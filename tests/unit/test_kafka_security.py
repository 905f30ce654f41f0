"""One place builds every Kafka client's security settings (services.platform.kafka.
client_security): PLAINTEXT changes nothing; SASL gives each library the same principal."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from services.platform import kafka
from services.platform.kafka import client_security
from services.settings import Settings, remember_for_clients


def sasl(tmp_path: Path, protocol: str = "SASL_SSL", **extra: object) -> Settings:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    return Settings(
        KAFKA_SECURITY_PROTOCOL=protocol,
        KAFKA_SASL_USERNAME="intake-donations",
        KAFKA_SASL_PASSWORD_FILE=str(secret),
        **extra,
    )


@pytest.mark.parametrize("library", ["kafka-python", "aiokafka", "faust"])
def test_plaintext_is_the_default_and_adds_nothing(library: kafka.Library) -> None:
    assert Settings().kafka_security_protocol == "PLAINTEXT"
    assert client_security(Settings(), library) == {}


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "ledger")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    got = client_security(Settings(), "kafka-python")
    assert got == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "ledger",
        "sasl_plain_password": "pw",
    }
    assert "pw" not in repr(Settings())  # a secret, not printed with the settings


def test_kafka_python_gets_scram_over_tls_with_the_ca(tmp_path: Path) -> None:
    got = client_security(sasl(tmp_path, KAFKA_SSL_CAFILE="/etc/exchange/ca.pem"), "kafka-python")
    assert got == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "intake-donations",
        "sasl_plain_password": "s3cret",  # the file's trailing newline is not the password's
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/exchange/ca.pem",
    }


def test_aiokafka_gets_a_verifying_tls_context(tmp_path: Path) -> None:
    got = client_security(sasl(tmp_path), "aiokafka")
    context = got.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert got == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "intake-donations",
        "sasl_plain_password": "s3cret",
    }
    assert "ssl_context" not in client_security(sasl(tmp_path, "SASL_PLAINTEXT"), "aiokafka")


def test_faust_gets_sasl_credentials_it_turns_into_the_same_aiokafka_settings(
    tmp_path: Path,
) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    creds = client_security(sasl(tmp_path), "faust")["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "intake-donations",
        "s3cret",
    )
    plain = client_security(sasl(tmp_path, "SASL_PLAINTEXT"), "faust")["broker_credentials"]
    assert credentials_to_aiokafka_auth(plain)["security_protocol"] == "SASL_PLAINTEXT"


def test_sasl_without_credentials_stops_at_start() -> None:
    settings = Settings(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="ledger")
    with pytest.raises(SystemExit, match="KAFKA_SASL_PASSWORD"):
        client_security(settings, "aiokafka")


def test_tooling_clients_use_the_configured_settings(tmp_path: Path) -> None:
    assert kafka.security("kafka-python") == {}
    kafka.configure_security(sasl(tmp_path, "SASL_PLAINTEXT"))
    try:
        assert kafka.security("kafka-python")["sasl_plain_username"] == "intake-donations"
    finally:
        remember_for_clients(None)


def test_the_producer_header_names_the_process_service_not_the_topic() -> None:
    eid = __import__("uuid").uuid4()
    assert [k for k, _ in kafka.headers_for(eid, "X")] == ["event_id", "event_type"]
    kafka.set_producer("matcher-2")
    try:
        assert dict(kafka.headers_for(eid, "X"))["producer"] == b"matcher"
        assert dict(kafka.headers_for(eid, "X", producer="ledger"))["producer"] == b"ledger"
    finally:
        kafka.set_producer(None)
