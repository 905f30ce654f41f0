"""What the OpenAPI document says beyond each route's own success: every refusal the API
answers, with its body, and the rules pydantic checks in code (a need's fields per kind).

The document is a contract clients generate code and tests from, and the project's own
contract test (tests/integration/test_openapi_contract.py) holds every answer to it, so every
status any route can answer is declared here once, for every operation, with the body it
carries: FastAPI on its own declares only the success and a 422 whose body (`loc`, `msg`,
`type`) is not the one this API sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from schemas.common import NeedKind
from schemas.specs import ALLOWED, KIND_FIELDS, WANTED


class FieldProblem(BaseModel):
    """One failing field: where, why, and the JSON type of what was given (never the value,
    which may be personal data)."""

    field: str = Field(
        description="dotted path: `title`, `place.district`, `query.after`, "
        "`header.Last-Event-ID`; `(body)` for a rule across fields"
    )
    reason: str
    value_type: str = Field(
        description="`string`, `integer`, `number`, `boolean`, `array`, `object`, `null`, "
        "or `missing`"
    )


class ValidationProblem(BaseModel):
    """422: every failing field at once. Nothing was written."""

    detail: list[FieldProblem]


class Problem(BaseModel):
    """A refusal with its reason in words. Nothing was written."""

    model_config = ConfigDict(extra="allow")

    detail: str


class Unavailable(BaseModel):
    """503: the gateway cannot serve for now; nothing was written, retry after `Retry-After`."""

    model_config = ConfigDict(extra="allow")

    detail: str
    reason: str = Field(description="`database_unavailable` or `disk_full`")


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}},
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request cannot be read as HTTP or JSON."},
    401: {
        "model": Problem,
        "description": "No bearer token, or an unknown or revoked one.",
        "headers": WWW_AUTHENTICATE,
    },
    403: {
        "model": Problem,
        "description": "Not your role (auditors never write), or another organisation's "
        "fund, need, volunteer or posting.",
    },
    404: {"model": Problem, "description": "No such fund, need, match, volunteer or posting."},
    409: {
        "model": Problem,
        "description": "The `Idempotency-Key` was already used with another request.",
    },
    413: {"model": Problem, "description": "The request body is larger than the gateway takes."},
    422: {
        "model": ValidationProblem,
        "description": "Invalid input: every failing field, with the reason and the JSON type "
        "given. Personal data in a text field is refused the same way.",
    },
    429: {
        "model": Problem,
        "description": "Too many requests from this caller; retry after `Retry-After`.",
        "headers": RETRY_AFTER,
    },
    503: {
        "model": Unavailable,
        "description": "The database is unreachable or out of disk; nothing was written, "
        "retry after `Retry-After`.",
        "headers": RETRY_AFTER,
    },
}
"""The refusals every operation may answer (each route adds its success)."""

EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `id` (the archive sequence), `event` (the event "
        "type), `data` (the event's JSON); an `unavailable` event ends a stream whose "
        "database went away, a `refused` event one whose token was revoked or replaced or "
        "whose organisation was suspended since it opened.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

DISCLOSURE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: an HTML page, or with `format=csv` a CSV download.",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}

HEALTH: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Not healthy: a service is not beating or not ready, the archive lags, "
        "the database does not answer, or disk is low (`reason`).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def need_kind_rules() -> list[dict[str, Any]]:
    """`NeedSpec`'s per-kind rule (`schemas.specs.WANTED` and `ALLOWED`) in JSON Schema: what
    a need of each kind must carry, and what it must not. Kept out of the event contract's
    exported schemas, whose published versions never change; the rule itself is older."""
    rules = []
    for kind in NeedKind:
        absent: dict[str, Any] = {
            f: ({"maxItems": 0} if f == "required_skills" else {"type": "null"})
            for f in KIND_FIELDS
            if f not in ALLOWED[kind]
        }
        rules.append(
            {
                "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
                "then": {"required": sorted(WANTED[kind]), "properties": absent},
            }
        )
    return rules


NEED_RULES_TEXT = (
    " Per kind: `volunteer_hours` needs `shift` and `volunteers_needed` (may add "
    "`required_skills`); `money` needs `amount`; `goods` needs `quantity` and `unit` (may add "
    "`unit_cost`, and `quantity` × `unit_cost` at most 10^13 minor units). No kind carries "
    "another kind's fields. A shift ends by the deadline."
)


def _errors_as_json(responses: dict[str, Any]) -> None:
    """Refusals are JSON on every route; FastAPI files them under the route's own media type
    (text/html for the disclosure, text/plain for /metrics)."""
    for status, response in responses.items():
        content = response.get("content", {})
        if status.isdigit() and int(status) >= 400 and "application/json" not in content:
            response["content"] = {"application/json": next(iter(content.values()), {})}


def install(app: FastAPI) -> None:
    """Serve FastAPI's document with the need rules added (the refusals are declared on the
    routes, through the app's `responses`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            for operations in doc["paths"].values():
                for operation in operations.values():
                    _errors_as_json(operation["responses"])
            need = doc.get("components", {}).get("schemas", {}).get("NeedSpec")
            if need is not None:
                need["allOf"] = need_kind_rules()
                need["description"] = need.get("description", "") + NEED_RULES_TEXT
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
