"""The write side of the API: each route checks who may act, then records one posting.

Routes decide only what needs no state beyond identity and ownership (401/403/404/409/422);
every rule that depends on history (amend only an open need, refund no more than was given)
is decided by the owning intake service and reported on the posting's status.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any, Self, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from schemas import specs
from schemas.bodies import DonationSpec, NeedSpec, PledgeSpec
from schemas.common import Description, Frozen, Money, Name, Place, Role
from schemas.funds import ReservePercent
from schemas.messages import (
    AcceptMatch,
    AmendNeed,
    AmendPledge,
    CancelNeed,
    ConfirmMatch,
    DeclineMatch,
    MakePledge,
    Message,
    NeedAmendment,
    OpenFund,
    PostNeed,
    ReceiveDonation,
    RecordNoShow,
    Recurrence,
    RefundDonation,
    RegisterVolunteer,
    SetFundReserve,
    WithdrawPledge,
)
from schemas.needs import recurrence_problem
from schemas.sealed import Sealed, new_key, seal, subject_of
from schemas.specs import FundSpec
from schemas.topics import (
    DONATIONS_POSTINGS,
    MATCHES_POSTINGS,
    NEEDS_POSTINGS,
    PLEDGES_POSTINGS,
    TopicSpec,
)
from services import reference
from services.domain.needs import occurrences
from services.domain.reference import Terms, posting_problems
from services.gateway.deps import (
    Caller,
    IdemHeader,
    Pool,
    PostingsDep,
    require_owner,
    require_role,
)
from services.gateway.outbox import IdempotencyConflict, Ownership
from services.gateway.postings import Posting, request_hash
from services.gateway.reference_api import check_codes, current_terms
from services.gateway.screening import personal_data_problems
from services.identity import Principal, issue_token, rotate_token
from services.privacy import Forgotten, get_or_create_key, insert_key, key_writer

router = APIRouter(prefix="/v1")

COMMUNITY = (Role.COMMUNITY,)
NULL: JsonDict = {"type": "null"}
Reason = Annotated[Description, Field(min_length=1, max_length=500)]


class ReasonBody(Frozen):
    """Why (shown to the other side and kept in the log)."""

    reason: Reason


class RefundBody(Frozen):
    """How much of a donation goes back, and why."""

    amount: Money
    reason: Reason


class VolunteerBody(Frozen):
    """A volunteer to register: a pseudonym and a home place (district, street). Nothing else:
    no phone, no ID number, no address."""

    pseudonym: Name
    home: Place


class ConfirmBody(Frozen):
    """What was delivered: minutes served (a shift) or money received (a fund), exactly one."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["minutes_served"], "properties": {"amount_received": NULL}},
                {"required": ["amount_received"], "properties": {"minutes_served": NULL}},
            ]
        }
    )

    minutes_served: Annotated[int, Field(gt=0, le=24 * 60 * 7)] | None = None
    amount_received: Money | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Self:
        # the rule of ConfirmMatch, checked here too so that it is a 422 at the door, before
        # the ownership look-up, and never a ConfirmMatch that fails to build (a 500)
        if (self.minutes_served is None) == (self.amount_received is None):
            raise ValueError("give exactly one of minutes_served and amount_received")
        return self


async def submit(
    request: Request,
    svc: PostingsDep,
    who: Principal,
    *,
    topic: TopicSpec,
    key: uuid.UUID,
    payload: Message,
    body: BaseModel | None,
    idem: str | None,
    ids: dict[str, str],
    also: Any = None,
    owns: tuple[Ownership, ...] = (),
    similar_to: str | None = None,
    shown_once: dict[str, str] | None = None,
) -> JSONResponse:
    """Accept one posting and answer 202 with its id (or the stored answer of a retry).

    `shown_once` (filled by `also`, e.g. a new token) joins the first answer only: it is not
    stored, so a retry never reveals it again."""
    problems = personal_data_problems(body, idem)
    if problems:
        raise HTTPException(422, problems)
    posting_id = uuid.uuid4()
    response: dict[str, Any] = {
        "posting_id": str(posting_id),
        "status": "accepted",
        **ids,
        "links": {"posting": f"/v1/postings/{posting_id}"},
    }
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    fingerprint = request_hash(path, body.model_dump(mode="json") if body is not None else {})
    try:
        result = await svc.accept(
            Posting(
                topic=topic,
                key=key,
                payload=payload,
                org_id=str(who.id),
                role=who.role,
                idempotency_key=idem,
                request_hash=fingerprint,
                response=response,
                also=also,
                owns=owns,
                similar_to=similar_to,
            )
        )
    except IdempotencyConflict:
        raise HTTPException(
            409, "Idempotency-Key was already used with a different request"
        ) from None
    if not result.replayed:
        request.app.state.accepted += 1
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    content = result.response if result.replayed else result.response | (shown_once or {})
    return JSONResponse(status_code=202, content=content, headers=headers)


async def submit_match(
    request: Request,
    svc: PostingsDep,
    who: Principal,
    match_id: uuid.UUID,
    payload: Message,
    body: BaseModel | None,
    idem: str | None,
) -> JSONResponse:
    """Accept an answer to, or a confirmation of, one match (decided by the matcher)."""
    return await submit(
        request,
        svc,
        who,
        topic=MATCHES_POSTINGS,
        key=match_id,
        payload=payload,
        body=body,
        idem=idem,
        ids={"match_id": str(match_id)},
    )


def need_fingerprint(need: specs.NeedSpec) -> str:
    """Same category, same place, same window (or deadline): a possible duplicate."""
    when = need.shift.model_dump_json() if need.shift else need.deadline.isoformat()
    text = f"{need.category}|{need.place.model_dump_json()}|{when}"
    return hashlib.sha256(text.encode()).hexdigest()


S = TypeVar("S", bound=BaseModel)


def _wire(spec: type[S], body: BaseModel, **sealed: Any) -> S:
    """The spec the log carries: the client's body with its personal text replaced by sealed
    values (docs/privacy.md). The plain body is kept only for screening and the request hash."""
    return spec.model_validate(body.model_dump() | sealed)


# ---- foundations ----


class FundOpening(FundSpec):
    """A fund to open: its restrictions, and the share of its money held back for urgent
    needs (0 to 100 %, default 0; changed later with `PUT /v1/funds/{id}/reserve`)."""

    urgent_reserve_percent: ReservePercent = 0


class FundReserve(Frozen):
    """The share of a fund's net donations held back for high and critical needs: low and
    normal needs take only what lies beyond it until 48 hours before their deadline. A change
    holds from now on; no proposal already made is withdrawn (docs/matching.md)."""

    urgent_reserve_percent: ReservePercent


@router.post("/funds", status_code=202, tags=["foundations"])
async def open_fund(
    request: Request, body: FundOpening, svc: PostingsDep, who: Caller, idem: IdemHeader = None
) -> JSONResponse:
    """Open a fund with its restrictions (categories, districts, period, cap per need) and
    what it holds back for urgent needs (`urgent_reserve_percent`, default 0)."""
    require_role(who, Role.FOUNDATION)
    await check_codes(request, body)
    fund_id = uuid.uuid4()
    spec = FundSpec.model_validate(body.model_dump(exclude={"urgent_reserve_percent"}))
    return await submit(
        request,
        svc,
        who,
        topic=DONATIONS_POSTINGS,
        key=fund_id,
        payload=OpenFund(
            fund_id=fund_id, fund=spec, urgent_reserve_percent=body.urgent_reserve_percent
        ),
        body=body,
        idem=idem,
        ids={"fund_id": str(fund_id)},
        owns=(Ownership("fund", fund_id, who.id),),
    )


@router.put("/funds/{fund_id}/reserve", status_code=202, tags=["foundations"])
async def set_fund_reserve(
    request: Request,
    fund_id: uuid.UUID,
    body: FundReserve,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Set the share of your fund held back for high and critical needs (0 to 100 %). Money
    already proposed to a need stays with it; what a lower share frees is offered at once."""
    require_role(who, Role.FOUNDATION)
    await require_owner(pool, who, "fund", fund_id)
    return await submit(
        request,
        svc,
        who,
        topic=DONATIONS_POSTINGS,
        key=fund_id,
        payload=SetFundReserve(fund_id=fund_id, urgent_reserve_percent=body.urgent_reserve_percent),
        body=body,
        idem=idem,
        ids={"fund_id": str(fund_id)},
    )


@router.post("/funds/{fund_id}/donations", status_code=202, tags=["foundations"])
async def donate(
    request: Request,
    fund_id: uuid.UUID,
    body: DonationSpec,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Record a donation into one of your funds."""
    require_role(who, Role.FOUNDATION)
    await require_owner(pool, who, "fund", fund_id)
    donation_id = uuid.uuid4()
    # A donor may be a person (docs/privacy.md): the label is sealed under the donation's own
    # key unless it is, when posted, a registered organisation's name (public, and the only
    # label the disclosure report ever names); the note is always sealed. Decided here, once:
    # a sealed label is never named in a report, whatever organisations register later.
    subject, key = subject_of("donation", donation_id), new_key()
    public = await pool.fetchval("SELECT 1 FROM organisations WHERE name = $1", body.donor)
    sealed: dict[str, Any] = {}
    if not public:
        sealed["donor"] = seal(body.donor, subject, key)
    if body.note:
        sealed["note"] = seal(body.note, subject, key)
    wire = _wire(specs.DonationSpec, body, **sealed)
    store_key = key_writer(subject, key) if sealed else None
    return await submit(
        request,
        svc,
        who,
        topic=DONATIONS_POSTINGS,
        key=fund_id,
        payload=ReceiveDonation(fund_id=fund_id, donation_id=donation_id, donation=wire),
        body=body,
        idem=idem,
        ids={"fund_id": str(fund_id), "donation_id": str(donation_id)},
        also=store_key,
    )


@router.post(
    "/funds/{fund_id}/donations/{donation_id}/refunds", status_code=202, tags=["foundations"]
)
async def refund(
    request: Request,
    fund_id: uuid.UUID,
    donation_id: uuid.UUID,
    body: RefundBody,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Refund all or part of a donation (never more than was given)."""
    require_role(who, Role.FOUNDATION)
    await require_owner(pool, who, "fund", fund_id)
    refund_id = uuid.uuid4()
    return await submit(
        request,
        svc,
        who,
        topic=DONATIONS_POSTINGS,
        key=fund_id,
        payload=RefundDonation(
            fund_id=fund_id,
            donation_id=donation_id,
            refund_id=refund_id,
            amount=body.amount,
            reason=body.reason,
        ),
        body=body,
        idem=idem,
        ids={"fund_id": str(fund_id), "refund_id": str(refund_id)},
    )


# ---- communities ----


@router.post("/needs", status_code=202, tags=["communities"])
async def post_need(
    request: Request,
    body: NeedSpec,
    svc: PostingsDep,
    who: Caller,
    idem: IdemHeader = None,
    repeat_weeks: Annotated[
        int | None,
        Query(ge=2, le=52, description="a weekly need: how many weeks, this one included"),
    ] = None,
) -> JSONResponse:
    """Post a need (volunteer hours, money or goods). Answered once it is durable; a need
    that looks like one you posted recently is flagged in `warnings`, not merged. With
    `repeat_weeks`, the need comes back every week: the answer lists every occurrence's id
    (`need_ids`), each an ordinary need that can be amended or cancelled on its own."""
    require_role(who, *COMMUNITY)
    await check_codes(request, body)
    problem = recurrence_problem(body, repeat_weeks) if repeat_weeks else None
    if problem:
        field = {"field": "query.repeat_weeks", "reason": problem, "value_type": "integer"}
        raise HTTPException(422, [field])
    need_id = uuid.uuid4()
    repeat = Recurrence(weeks=repeat_weeks) if repeat_weeks else None
    need_ids = [nid for nid, _ in occurrences(need_id, body, repeat.weeks if repeat else 1)]
    ids = {"need_id": str(need_id)}
    if repeat:
        ids["need_ids"] = ",".join(str(n) for n in need_ids)
    # The description may describe beneficiaries: sealed under the need's own key, stored with
    # the posting (docs/privacy.md). Every occurrence of a weekly need carries this one value.
    wire: specs.NeedSpec = body
    store_key = None
    if body.description:
        subject, key = subject_of("need", need_id), new_key()
        wire = _wire(specs.NeedSpec, body, description=seal(body.description, subject, key))
        store_key = key_writer(subject, key)

    return await submit(
        request,
        svc,
        who,
        topic=NEEDS_POSTINGS,
        key=need_id,
        payload=PostNeed(need_id=need_id, need=wire, repeat=repeat),
        body=body,
        idem=idem,
        ids=ids,
        also=store_key,
        owns=tuple(Ownership("need", nid, who.id) for nid in need_ids),
        similar_to=need_fingerprint(body),
    )


@router.patch("/needs/{need_id}", status_code=202, tags=["communities"])
async def amend_need(
    request: Request,
    need_id: uuid.UUID,
    body: NeedAmendment,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Change quantity, window, deadline or urgency of one of your open needs."""
    require_role(who, *COMMUNITY)
    await require_owner(pool, who, "need", need_id)
    return await submit(
        request,
        svc,
        who,
        topic=NEEDS_POSTINGS,
        key=need_id,
        payload=AmendNeed(need_id=need_id, amendment=body),
        body=body,
        idem=idem,
        ids={"need_id": str(need_id)},
    )


@router.post("/needs/{need_id}/cancel", status_code=202, tags=["communities"])
async def cancel_need(
    request: Request,
    need_id: uuid.UUID,
    body: ReasonBody,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Cancel one of your needs; what it holds goes back."""
    require_role(who, *COMMUNITY)
    await require_owner(pool, who, "need", need_id)
    return await submit(
        request,
        svc,
        who,
        topic=NEEDS_POSTINGS,
        key=need_id,
        payload=CancelNeed(need_id=need_id, reason=body.reason),
        body=body,
        idem=idem,
        ids={"need_id": str(need_id)},
    )


async def _match_need_owner(pool: Pool, who: Principal, match_id: uuid.UUID) -> None:
    need_id = await pool.fetchval("SELECT need_id FROM rm_matches WHERE match_id = $1", match_id)
    if need_id is None:
        raise HTTPException(404, "no such match (yet: matches are visible once archived)")
    await require_owner(pool, who, "need", need_id)


@router.post("/matches/{match_id}/confirm", status_code=202, tags=["communities"])
async def confirm_match(
    request: Request,
    match_id: uuid.UUID,
    body: ConfirmBody,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Confirm delivery for a match on one of your needs: minutes served or money received."""
    require_role(who, *COMMUNITY)
    await _match_need_owner(pool, who, match_id)
    payload = ConfirmMatch(
        match_id=match_id, minutes_served=body.minutes_served, amount_received=body.amount_received
    )
    return await submit_match(request, svc, who, match_id, payload, body, idem)


@router.post("/matches/{match_id}/no-show", status_code=202, tags=["communities"])
async def no_show(
    request: Request,
    match_id: uuid.UUID,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Record that the volunteer did not come; the need reopens while time allows."""
    require_role(who, *COMMUNITY)
    await _match_need_owner(pool, who, match_id)
    return await submit_match(
        request, svc, who, match_id, RecordNoShow(match_id=match_id), None, idem
    )


# ---- volunteers ----


@router.post("/volunteers", status_code=202, tags=["volunteers"])
async def register_volunteer(
    request: Request,
    body: VolunteerBody,
    svc: PostingsDep,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Register a volunteer (communities and social organisations). The answer carries the
    volunteer's own token, shown once, with which they pledge and answer proposals."""
    require_role(who, Role.COMMUNITY, Role.SOCIAL_ORG)
    volunteer_id = uuid.uuid4()
    issued: dict[str, str] = {}
    subject, key = subject_of("volunteer", volunteer_id), new_key()

    async def register(conn: Any) -> None:
        await conn.execute(
            "INSERT INTO volunteers (volunteer_id, registered_by) VALUES ($1, $2)",
            volunteer_id,
            who.id,
        )
        await insert_key(conn, subject, key)  # docs/privacy.md: the pseudonym is sealed
        issued["volunteer_token"] = await issue_token(conn, "volunteer", volunteer_id)

    return await submit(
        request,
        svc,
        who,
        topic=PLEDGES_POSTINGS,
        key=volunteer_id,
        payload=registration(volunteer_id, body, key),
        body=body,
        idem=idem,
        ids={"volunteer_id": str(volunteer_id)},
        also=register,
        shown_once=issued,
    )


def registration(volunteer_id: uuid.UUID, body: VolunteerBody, key: bytes) -> RegisterVolunteer:
    """What registering a volunteer posts: the pseudonym sealed under the volunteer's new key
    (docs/privacy.md). The bulk import (services/importing) posts exactly this too."""
    pseudonym = seal(body.pseudonym, subject_of("volunteer", volunteer_id), key)
    return RegisterVolunteer(volunteer_id=volunteer_id, pseudonym=pseudonym, home=body.home)


def pledge_wire(volunteer_id: uuid.UUID, body: PledgeSpec, key: bytes) -> specs.PledgeSpec:
    """The pledge the log carries: the body with the pseudonym sealed under the volunteer's
    key. The bulk import's MakePledge carries exactly this too."""
    return _wire(
        specs.PledgeSpec,
        body,
        pseudonym=seal(body.pseudonym, subject_of("volunteer", volunteer_id), key),
    )


async def pledge_problems(
    pool: Pool, body: PledgeSpec, terms: Terms | None = None
) -> list[dict[str, str]]:
    """Why the gateway refuses a pledge body beyond its model and the personal-data screening
    that `submit` runs on every body: a skill that is unknown, retired, or for another district
    than the volunteer's home (`skills.1`; docs/contract.md, "Reference data"). A check here
    (422 items: field, reason, value_type) refuses the pledge over HTTP and the same row of a
    bulk import (services/importing calls this for every row), so the two never differ.
    `terms`: the lists, when the caller has them (the HTTP route's cache); else read here."""
    return posting_problems(terms if terms is not None else await reference.load(pool), body)


async def _volunteer_or_registrar(pool: Pool, who: Principal, volunteer_id: uuid.UUID) -> None:
    registrar = await pool.fetchval(
        "SELECT registered_by FROM volunteers WHERE volunteer_id = $1", volunteer_id
    )
    if registrar is None:
        raise HTTPException(404, "no such volunteer")
    if who.id not in (volunteer_id, registrar):
        raise HTTPException(403, "only the volunteer or the organisation that registered them")


@router.post("/volunteers/{volunteer_id}/token", tags=["volunteers"])
async def rotate_volunteer_token(
    request: Request, volunteer_id: uuid.UUID, pool: Pool, who: Caller
) -> JSONResponse:
    """Re-issue a volunteer's token (only the organisation that registered them). The new
    token is in this answer only; every earlier token of the volunteer stops working at once.
    A retry rotates again: the token of the latest answer is the one that works. Recorded
    (who, whom, when) in `token_events`."""
    registrar = await pool.fetchval(
        "SELECT registered_by FROM volunteers WHERE volunteer_id = $1", volunteer_id
    )
    if registrar is None:
        raise HTTPException(404, "no such volunteer")
    if who.id != registrar:
        raise HTTPException(403, "only the organisation that registered this volunteer")
    async with pool.acquire() as conn:
        token = await rotate_token(conn, "volunteer", volunteer_id, str(who.id))
    request.app.state.principals.forget(volunteer_id)  # this process: before the answer
    return JSONResponse(
        status_code=200,
        content={"volunteer_id": str(volunteer_id), "volunteer_token": token},
        headers={"Cache-Control": "no-store"},
    )


@router.put("/volunteers/{volunteer_id}/pledge", status_code=202, tags=["volunteers"])
async def pledge(
    request: Request,
    volunteer_id: uuid.UUID,
    body: PledgeSpec,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Pledge skills and availability, or replace the pledge (the volunteer, or the
    organisation that registered them)."""
    await _volunteer_or_registrar(pool, who, volunteer_id)
    problems = await pledge_problems(pool, body, await current_terms(request))
    if problems:
        raise HTTPException(422, problems)
    first = not await pool.fetchval(
        "SELECT 1 FROM ownership WHERE resource = 'pledge' AND resource_id = $1", volunteer_id
    )
    subject = subject_of("volunteer", volunteer_id)
    try:
        key = await get_or_create_key(pool, subject)
    except Forgotten:
        raise HTTPException(
            409, "this volunteer was forgotten at their request; register them anew"
        ) from None
    wire = pledge_wire(volunteer_id, body, key)
    payload: Message = (
        MakePledge(volunteer_id=volunteer_id, pledge=wire)
        if first
        else AmendPledge(volunteer_id=volunteer_id, pledge=wire)
    )
    registrar = await pool.fetchval(
        "SELECT registered_by FROM volunteers WHERE volunteer_id = $1", volunteer_id
    )
    return await submit(
        request,
        svc,
        who,
        topic=PLEDGES_POSTINGS,
        key=volunteer_id,
        payload=payload,
        body=body,
        idem=idem,
        ids={"volunteer_id": str(volunteer_id)},
        owns=(Ownership("pledge", volunteer_id, registrar),) if first else (),
    )


async def seal_for_volunteer(pool: Pool, volunteer_id: uuid.UUID, text: str) -> Sealed:
    """A volunteer's free text (a reason) sealed under their key, so that forgetting them
    forgets it (docs/privacy.md). A forgotten volunteer may still withdraw: their text is then
    sealed under a fresh key that is never stored, so it is forgotten from the start (a new
    key for the subject would undo the forgetting)."""
    subject = subject_of("volunteer", volunteer_id)
    try:
        key = await get_or_create_key(pool, subject)
    except Forgotten:
        key = new_key()  # discarded: nobody can ever open this value
    return seal(text, subject, key)


@router.post("/volunteers/{volunteer_id}/pledge/withdraw", status_code=202, tags=["volunteers"])
async def withdraw(
    request: Request,
    volunteer_id: uuid.UUID,
    body: ReasonBody,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Withdraw a pledge. Shifts already accepted end only through the match lifecycle
    (decline, or the community's confirmation or no-show)."""
    await _volunteer_or_registrar(pool, who, volunteer_id)
    reason = await seal_for_volunteer(pool, volunteer_id, body.reason)
    return await submit(
        request,
        svc,
        who,
        topic=PLEDGES_POSTINGS,
        key=volunteer_id,
        payload=WithdrawPledge(volunteer_id=volunteer_id, reason=reason),
        body=body,
        idem=idem,
        ids={"volunteer_id": str(volunteer_id)},
    )


async def _own_proposal(pool: Pool, who: Principal, match_id: uuid.UUID) -> None:
    if not who.is_volunteer:
        raise HTTPException(403, "only the volunteer a shift was proposed to may answer it")
    volunteer = await pool.fetchval(
        "SELECT volunteer_id FROM rm_matches WHERE match_id = $1", match_id
    )
    if volunteer is None:
        raise HTTPException(404, "no such match (yet: matches are visible once archived)")
    if volunteer != who.id:
        raise HTTPException(403, "this shift was proposed to another volunteer")


@router.post("/matches/{match_id}/accept", status_code=202, tags=["volunteers"])
async def accept(
    request: Request,
    match_id: uuid.UUID,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Accept a shift proposed to you."""
    await _own_proposal(pool, who, match_id)
    return await submit_match(
        request, svc, who, match_id, AcceptMatch(match_id=match_id), None, idem
    )


@router.post("/matches/{match_id}/decline", status_code=202, tags=["volunteers"])
async def decline(
    request: Request,
    match_id: uuid.UUID,
    svc: PostingsDep,
    pool: Pool,
    who: Caller,
    idem: IdemHeader = None,
) -> JSONResponse:
    """Decline a shift proposed to you; the next candidate is asked."""
    await _own_proposal(pool, who, match_id)
    return await submit_match(
        request, svc, who, match_id, DeclineMatch(match_id=match_id), None, idem
    )
