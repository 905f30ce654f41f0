"""The donor receipt pages (docs/receipts.md).

- `/receipts/<id>`: public, no sign-in (the receipt id is the capability). The page shows the
  donation as the exchange reports it; static/receipt.js then checks it against the archive's
  signed checkpoints with only what the link pins (the fragment, never sent here).
- `/funds/<fund>/receipts/<donation>`: the foundation issues a receipt: the link, its QR code
  and a printable view.

Both read the JSON API in-process, as every page does (services/web/api.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.web.api import Api
from services.web.i18n import Translator, terms_of
from services.web.routes import _lang, _see_other, api_for, current, qr_svg, render

router = APIRouter(include_in_schema=False)


def _retry_after(response: Any) -> int:
    try:
        return max(1, int(response.headers.get("Retry-After", "10")))
    except ValueError:
        return 10


@router.get("/receipts/{receipt}", response_class=HTMLResponse)
async def receipt_page(request: Request, receipt: str) -> Response:
    """A donor's receipt, checked in the browser."""
    session = await current(request)
    async with Api(request.app, request.app.state.web_secret, "") as api:
        r = await api.get(f"/receipts/{receipt}")
    if r.status_code == 404:
        return render(request, "error.html", session, 404, message="receipt.unknown")
    if r.status_code == 503:
        return render(
            request,
            "receipt.html",
            session,
            200,
            receipt=receipt,
            doc=None,
            retry=_retry_after(r),
            detail=r.json().get("detail", ""),
        )
    if r.status_code != 200:
        return render(request, "error.html", session, 503, message="receipt.unavailable")
    return render(request, "receipt.html", session, receipt=receipt, doc=r.json(), retry=None)


@router.get("/funds/{fund_id}/receipts/{donation_id}", response_class=HTMLResponse)
async def issue_page(request: Request, fund_id: uuid.UUID, donation_id: uuid.UUID) -> Response:
    """The foundation issues a donation's receipt: link, QR code, printable."""
    session = await current(request)
    if session is None:
        return _see_other("/")
    async with api_for(request, session) as api:
        r = await api.get(f"/funds/{fund_id}/donations/{donation_id}/receipt")
    if r.status_code == 503:
        return render(
            request,
            "receipt_issue.html",
            session,
            200,
            fund_id=fund_id,
            issued=None,
            retry=_retry_after(r),
            detail=r.json().get("detail", ""),
        )
    if r.status_code != 200:
        message = "error.not_yours" if r.status_code in (403, 404) else "receipt.unavailable"
        return render(request, "error.html", session, r.status_code, message=message)
    issued = r.json()
    link = f"{str(request.base_url).rstrip('/')}{issued['path']}#{issued['fragment']}"
    t = Translator(_lang(request), terms_of(request.app.state))
    return render(
        request,
        "receipt_issue.html",
        session,
        fund_id=fund_id,
        issued=issued,
        link=link,
        qr=qr_svg(link, t("receipt.qr_title")),
        retry=None,
    )
