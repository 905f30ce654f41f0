"""The contract holds: golden files of every version still load, exported schemas are current
and unchanged for published versions, and every message validates against its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import export
from schemas.codec import UPCASTERS, decode, encode
from schemas.envelope import Envelope
from schemas.legacy import LEGACY
from schemas.messages import ALL_MESSAGES, Message
from schemas.topics import ALL_TOPICS
from tests.samples import envelope_json, samples
from tests.strategies import varied

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent.parent / "golden"
CURRENT = {m.TYPE: m for m in ALL_MESSAGES}


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def validator(event_type: str, version: int) -> jsonschema.Draft202012Validator:
    schema = json.loads((export.SCHEMA_DIR / export.schema_file(event_type, version)).read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("cls", [*ALL_MESSAGES, *LEGACY], ids=lambda c: f"{c.TYPE}.v{c.VERSION}")
def test_every_version_of_every_message_has_a_golden_file_and_a_schema(cls: type[Message]) -> None:
    name = export.schema_file(cls.TYPE, cls.VERSION)
    assert (GOLDEN / name).exists(), f"add tests/golden/{name} (see tests/samples.py)"
    assert (export.SCHEMA_DIR / name).exists(), "run: python -m schemas.export"


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.TYPE)
def test_every_older_version_has_an_upcaster_and_a_legacy_model(cls: type[Message]) -> None:
    for version in range(1, cls.VERSION):
        assert (cls.TYPE, version) in UPCASTERS
        assert any(m.TYPE == cls.TYPE and version == m.VERSION for m in LEGACY)


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_golden_files_load_as_the_newest_model(path: Path) -> None:
    raw = path.read_bytes()
    stored = json.loads(raw)
    env = decode(raw)
    cls = CURRENT[stored["event_type"]]
    assert isinstance(env.payload, cls)
    assert env.schema_version == cls.VERSION
    if stored["schema_version"] == cls.VERSION:
        assert json.loads(encode(env)) == stored, "current-version golden files round-trip exactly"


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_decoding_with_the_type_hint_gives_the_same_envelope(path: Path) -> None:
    """The hinted path (validation from bytes) and the general one (parse, upcast, validate)
    agree on every version of every message, older versions included."""
    raw = path.read_bytes()
    event_type = json.loads(raw)["event_type"]
    assert decode(raw, event_type) == decode(raw)
    other = next(t for t in CURRENT if t != event_type)
    assert decode(raw, other) == decode(raw), "a wrong hint is not believed"


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_golden_files_validate_against_their_versions_json_schema(path: Path) -> None:
    stored = json.loads(path.read_bytes())
    validator(stored["event_type"], stored["schema_version"]).validate(stored)


def test_exported_files_are_current() -> None:
    stale = [
        p.name
        for p, text in export.rendered().items()
        if not p.exists() or p.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `python -m schemas.export`; out of date: {stale}"


def test_a_changed_model_is_refused_without_a_version_bump(tmp_path: Path) -> None:
    path = export.SCHEMA_DIR / "ClockTicked.v1.json"
    schema = json.loads(path.read_text())
    schema["properties"]["payload"]["required"] = []  # what a silent model change would do
    with pytest.raises(export.SchemaChanged, match="raise the model's VERSION"):
        export.check_unchanged(path, json.dumps(schema))
    reworded = json.loads(path.read_text())
    reworded["description"] = "reworded documentation"
    export.check_unchanged(path, json.dumps(reworded))  # documentation only: allowed


def test_the_asyncapi_document_names_every_topic_writer_and_message() -> None:
    doc = json.loads(export.ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    channels = {c["address"]: c for c in doc["channels"].values()}
    for topic in ALL_TOPICS:
        ch = channels[topic.name]
        assert ch["x-writer"] == topic.owner and ch["x-key"] == topic.key
        assert ch["bindings"]["kafka"]["partitions"] == topic.partitions
        assert {
            doc["components"]["messages"][r["$ref"].split("/")[-1]]["name"]
            for r in ch["messages"].values()
        } == {m.TYPE for m in topic.messages}


@pytest.mark.parametrize("sample", samples(), ids=lambda m: f"{m.TYPE}.v{m.VERSION}")
def test_any_valid_message_survives_encode_and_decode(sample: Message) -> None:
    """Property: any message its model accepts round-trips unchanged through the wire format,
    Chinese text included, and validates against the exported JSON Schema."""
    if sample.VERSION != CURRENT[sample.TYPE].VERSION:
        return  # superseded versions are read through upcasters (see the golden tests)
    cls = CURRENT[sample.TYPE]
    schema = export.message_schema(cls)

    @given(varied(schema, envelope_json(sample)))
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def round_trip(data: dict[str, Any]) -> None:
        try:
            env = Envelope[cls].model_validate(data)  # type: ignore[valid-type]
        except ValidationError:
            return  # a rule beyond JSON Schema refused it (e.g. an end before its start)
        raw = encode(env)
        assert decode(raw) == env
        validator(cls.TYPE, cls.VERSION).validate(json.loads(raw))

    round_trip()


@given(st.text(alphabet="银发助餐江东街道鼓楼区志愿者社工慈善基金", min_size=1, max_size=40))
@settings(max_examples=50, deadline=None)
def test_chinese_names_round_trip_byte_for_byte(name: str) -> None:
    sample = next(s for s in samples() if s.TYPE == "OrganisationRegistered")
    env = Envelope[Message].model_validate(
        {
            **json.loads((GOLDEN / "OrganisationRegistered.v1.json").read_text()),
            "payload": sample.model_copy(update={"name": name}),
        }
    )
    raw = encode(env)
    assert name.encode() in raw
    assert decode(raw).payload.name == name  # type: ignore[attr-defined]


def test_every_envelope_model_pickles() -> None:
    """A processor's rollback point pickles its state, which may hold envelopes (an answer
    waiting for its match): every parametrised envelope must survive a pickle round trip."""
    import pickle

    for payload in samples():
        env = decode(json.dumps(envelope_json(payload)).encode())
        assert pickle.loads(pickle.dumps(env, pickle.HIGHEST_PROTOCOL)) == env, payload.TYPE


def test_an_envelope_unpickles_in_a_process_that_never_used_its_type() -> None:
    """Envelope models are made on first use (schemas.codec): a rollback point written by one
    process must still load in a fresh one, which has made no envelope model yet."""
    import pickle
    import subprocess
    import sys

    env = decode(json.dumps(envelope_json(samples()[0])).encode())
    blob = pickle.dumps(env, pickle.HIGHEST_PROTOCOL)
    script = (
        "import pickle, sys; env = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(env).__qualname__, env.event_type)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=blob, capture_output=True, check=True
    )
    assert done.stdout.decode().split() == [type(env).__qualname__, env.event_type]
