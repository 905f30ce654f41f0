"""Exports the contract for clients that are not ours: a JSON Schema per message type and
version, and an AsyncAPI 3 document naming every topic, its key, messages, writer and partitions.

Run `python -m schemas.export` (or `exchange schemas export`) after changing a model; the tests
fail when the checked-in files differ from what the models say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.envelope import Envelope
from schemas.legacy import LEGACY
from schemas.message import Message
from schemas.messages import ALL_MESSAGES
from schemas.topics import ALL_TOPICS

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "jsonschema"
ASYNCAPI = HERE / "asyncapi.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_file(event_type: str, version: int) -> str:
    """File name of one message type's schema at one version."""
    return f"{event_type}.v{version}.json"


def message_schema(cls: type[Message]) -> dict[str, Any]:
    """The JSON Schema of a whole message (envelope and payload) of this type and version."""
    schema = Envelope[cls].model_json_schema()  # type: ignore[valid-type]
    props = schema["properties"]
    props["event_type"] = {"const": cls.TYPE, "title": "Event Type", "type": "string"}
    props["schema_version"] = {"const": cls.VERSION, "title": "Schema Version", "type": "integer"}
    return {
        "$schema": DRAFT,
        "$id": f"https://schemas.community-exchange.example/{schema_file(cls.TYPE, cls.VERSION)}",
        **{k: v for k, v in schema.items() if k != "title"},
        "title": f"{cls.TYPE} v{cls.VERSION}",
        "description": (cls.__doc__ or "").strip(),
    }


def asyncapi() -> dict[str, Any]:
    """The topic catalogue as an AsyncAPI 3.0 document."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        cid = topic.name.replace(".", "_")
        refs = {}
        for m in topic.messages:
            mid = f"{m.TYPE}_v{m.VERSION}"
            messages[mid] = {
                "name": m.TYPE,
                "title": f"{m.TYPE} v{m.VERSION}",
                "summary": (m.__doc__ or "").strip().split("\n")[0],
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "event_id": {"type": "string", "format": "uuid"},
                        "event_type": {"const": m.TYPE},
                    },
                },
                "payload": {"$ref": f"jsonschema/{schema_file(m.TYPE, m.VERSION)}"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": topic.key},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
            refs[mid] = {"$ref": f"#/components/messages/{mid}"}
        channels[cid] = {
            "address": topic.name,
            "description": topic.description,
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "topicConfiguration": {"retention.ms": topic.retention_ms},
                    "bindingVersion": "0.5.0",
                }
            },
            "x-key": topic.key,
            "x-writer": topic.owner,
            "x-dead-letter-topic": topic.dead_letter,
        }
        operations[f"{topic.owner}_writes_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"{topic.owner} is the only writer of {topic.name}",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{mid}"} for mid in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Community Exchange topics",
            "version": "1.0.0",
            "description": "Every topic of the exchange, its key, its messages and its single "
            "writer. Messages are UTF-8 JSON envelopes; the `event_id` header repeats the "
            "envelope's id so consumers can deduplicate without decoding.",
        },
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "the embedded default (port chosen at start)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> dict[Path, str]:
    """Every exported file and its exact text."""
    files = {
        SCHEMA_DIR / schema_file(m.TYPE, m.VERSION): _dump(message_schema(m))
        for m in (*ALL_MESSAGES, *LEGACY)
    }
    files[ASYNCAPI] = _dump(asyncapi())
    return files


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


class SchemaChanged(Exception):
    """A published schema version would change: that needs a new version, not an edit."""


def fingerprint(schema: Any) -> Any:
    """The part of a schema that decides which messages are valid: titles and descriptions
    (docstrings) removed, so rewording documentation needs no version bump."""
    if isinstance(schema, dict):
        return {k: fingerprint(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [fingerprint(v) for v in schema]
    return schema


def check_unchanged(path: Path, text: str) -> None:
    """Refuse to change what a published version accepts."""
    if path.parent != SCHEMA_DIR or not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    if fingerprint(old) != fingerprint(json.loads(text)):
        raise SchemaChanged(
            f"{path.name} would change what it accepts. Published versions are immutable: "
            "raise the model's VERSION, add an upcaster from the old version in "
            "schemas/codec.py, keep the old model in schemas/legacy.py, and add a golden file."
        )


def write() -> list[Path]:
    """Write every exported file that changed; return those written. Raises SchemaChanged
    rather than alter what a published version accepts."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    files = rendered()
    for path, text in files.items():
        check_unchanged(path, text)
    changed = []
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for p in write():
        print(f"wrote {p.relative_to(HERE.parent)}")
