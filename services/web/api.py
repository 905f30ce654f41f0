"""The web app's way to act: the exchange's own JSON API, called in-process for the person.

Why not call the database or the write functions directly: the API is the one place that
decides roles, ownership, validation, idempotency and request budgets. A page that did any of
that itself would be a second copy of the rules, and the two would drift.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI


class Api:
    """The JSON API as one signed-in person sees it."""

    def __init__(self, app: FastAPI, secret: str, session_id: str) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://exchange.internal",
            headers={"X-Exchange-Web": secret, "X-Exchange-Session": session_id},
            timeout=30,
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/v1{path}", params=params)

    async def post(
        self, path: str, body: dict[str, Any] | None, key: str, method: str = "POST"
    ) -> httpx.Response:
        """A write with an Idempotency-Key from the form: a double click or a resent form is
        answered with the first answer, never written twice."""
        return await self.client.request(
            method,
            f"/v1{path}",
            json=body,
            headers={"Idempotency-Key": key or str(uuid.uuid4())},
        )

    async def upload(
        self, path: str, data: bytes, content_type: str, **params: Any
    ) -> httpx.Response:
        """A file as the request body (the bulk import: docs/import.md)."""
        return await self.client.post(
            f"/v1{path}",
            content=data,
            params=params,
            headers={"Content-Type": content_type},
            timeout=600,
        )


def field_errors(response: httpx.Response) -> dict[str, str]:
    """The API's refusal as {form field: reason}; "" holds what names no field."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return {"": response.text[:300]}
    if isinstance(detail, str):
        return {"": detail}
    out: dict[str, str] = {}
    for item in detail if isinstance(detail, list) else []:
        if isinstance(item, dict):  # services/gateway/app.py `validation_errors`
            field = str(item.get("field", ""))
            out["" if field == "(body)" else field] = str(item.get("reason", ""))
    return out or {"": str(detail)}
