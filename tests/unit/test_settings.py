"""The settings are read from the environment by services/settings.py itself (not by
pydantic-settings, to keep one-shot commands quick): the names, precedence and checks that
library gave must still hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.settings import Settings


def test_exchange_prefixed_names_fill_fields_and_are_converted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXCHANGE_HTTP_PORT", "9001")
    monkeypatch.setenv("EXCHANGE_LOG_JSON", "false")
    monkeypatch.setenv("EXCHANGE_VAR_DIR", "/srv/exchange")
    got = Settings()
    assert (got.http_port, got.log_json, got.var_dir) == (9001, False, Path("/srv/exchange"))


def test_connection_urls_go_by_their_bare_names_case_insensitively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("database_url", "postgresql://db/x")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092")
    got = Settings()
    assert (got.database_url, got.kafka_bootstrap_servers) == ("postgresql://db/x", "k1:9092")


def test_keywords_win_over_the_environment_by_any_of_a_fields_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/x")
    monkeypatch.setenv("EXCHANGE_HTTP_PORT", "9001")
    assert Settings(DATABASE_URL=None).database_url is None  # an explicit None is a value
    assert Settings(database_url="postgresql://kw/x").database_url == "postgresql://kw/x"
    assert Settings(EXCHANGE_HTTP_PORT=7).http_port == 7
    assert Settings(http_port=8).http_port == 8


def test_a_bad_value_names_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_HTTP_PORT", "eighty")
    with pytest.raises(ValidationError, match="http_port"):
        Settings()
    monkeypatch.delenv("EXCHANGE_HTTP_PORT")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL-PLEASE")
    with pytest.raises(ValidationError, match="PLAINTEXT"):
        Settings()


def test_unknown_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_NO_SUCH_THING", "1")
    assert Settings(no_such_keyword=1).http_port == Settings().http_port
