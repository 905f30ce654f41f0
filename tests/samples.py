"""One realistic payload of every message type (and every superseded version), in the demo's
words. The golden files in tests/golden/ were written from these once and are never rewritten:
they are what the log already holds, and every future version of the code must still read them.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.common import Money, Place, TimeWindow
from schemas.legacy import (
    BEFORE_CODES,
    BEFORE_FUND_RESERVES,
    BEFORE_SEALING,
    BEFORE_SEALING_MORE,
    AmendPledgeV1,
    MakePledgeV1,
    PledgeAmendedV1,
    PledgeMadeV1,
    PostingRefusedV1,
    PostNeedV1,
    SupplyListedV1,
)
from schemas.message import Message
from schemas.messages import (
    AcceptMatch,
    AmendNeed,
    AmendPledge,
    CancelNeed,
    CheckpointRecorded,
    ClockTicked,
    ConfirmMatch,
    CorrectEvent,
    DeclineMatch,
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    FundOpened,
    FundReserveSet,
    FundsDisbursed,
    FundsReserved,
    KeyRotated,
    MakePledge,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    MessageDeadLettered,
    NeedAmended,
    NeedAmendment,
    NeedCancelled,
    NeedExpired,
    NeedFulfilled,
    NeedPosted,
    NoShowRecorded,
    OpenFund,
    OrganisationRegistered,
    OrganisationReinstated,
    OrganisationSuspended,
    OrganisationTokenRotated,
    OrganisationTokensRevoked,
    OrgKind,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    PostingRefused,
    PostNeed,
    Problem,
    ReceiveDonation,
    RecordNoShow,
    Recurrence,
    ReferenceTermDefined,
    ReferenceTermRetired,
    RefundDonation,
    RegisterVolunteer,
    ReservationReleased,
    SetFundReserve,
    SupplyKind,
    VolunteerRegistered,
    WithdrawPledge,
)
from schemas.reservations import (
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
)
from schemas.sealed import Sealed
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from tests import factories as f

NEED = uuid.UUID("11111111-1111-4111-8111-111111111111")
FUND = uuid.UUID("22222222-2222-4222-8222-222222222222")
VOL = uuid.UUID("33333333-3333-4333-8333-333333333333")
MATCH = uuid.UUID("44444444-4444-4444-8444-444444444444")
DON = uuid.UUID("55555555-5555-4555-8555-555555555555")
RES = uuid.UUID("66666666-6666-4666-8666-666666666666")
ORG = uuid.UUID("77777777-7777-4777-8777-777777777777")
HOLD = uuid.UUID("88888888-8888-4888-8888-888888888888")
AT = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def sealed_sample(text: str, subject: str) -> Sealed:
    """A sealed value made with a fixed key and nonce, so the sample is the same every run
    (the gateway uses a random nonce and a per-subject random key). Key: bytes 0..31."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from schemas import sealed as s

    nonce = bytes(range(12))
    ct = AESGCM(bytes(range(32))).encrypt(nonce, text.encode(), s._aad(subject))
    kind = s.SealedDonation if subject.startswith("donation:") else Sealed
    return kind(
        subject=subject,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(ct).decode(),
    )


plain_need = NeedSpec.model_validate(
    f.volunteer_need(description="独居老人，行动不便，需要有人陪同就医")
)
need = plain_need.model_copy(
    update={"description": sealed_sample(plain_need.description, f"need:{NEED}")}  # type: ignore[arg-type]
)
fund = FundSpec.model_validate(f.fund(cap_per_need={"amount_minor": 500_000, "currency": "CNY"}))
plain_gift = DonationSpec.model_validate(f.donation(note="张阿姨为母亲祈福"))
gift = DonationSpec.model_validate(
    f.donation(
        donor=sealed_sample("张阿姨", f"donation:{DON}").model_dump(),
        note=sealed_sample("为母亲祈福", f"donation:{DON}").model_dump(),
    )
)
pledge = PledgeSpec.model_validate(f.pledge())
plain_near = PledgeSpec.model_validate(
    f.pledge(
        home={
            "district": "鼓楼区",
            "street": "江东街道",
            "community": "金陵名人居",
            "latitude": 32.06,
            "longitude": 118.74,
        },
        travel="same_community",
        travel_km=3.5,
    )
)
pseudonym = sealed_sample("王师傅", f"volunteer:{VOL}")
near = plain_near.model_copy(update={"pseudonym": pseudonym})
cny = Money(amount_minor=300_000, currency="CNY")
shift = TimeWindow.model_validate(f.volunteer_need()["shift"])
home = Place(district="鼓楼区", street="江东街道", community="辰龙广场社区")


def samples() -> list[Message]:
    """A sample of every current message type, then of every superseded version."""
    return [
        PostNeed(need_id=NEED, need=need, repeat=Recurrence(weeks=8)),
        AmendNeed(need_id=NEED, amendment=NeedAmendment(urgency="critical", volunteers_needed=3)),
        CancelNeed(need_id=NEED, reason="活动取消 (event cancelled)"),
        OpenFund(fund_id=FUND, fund=fund, urgent_reserve_percent=75),
        SetFundReserve(fund_id=FUND, urgent_reserve_percent=50),
        ReceiveDonation(fund_id=FUND, donation_id=DON, donation=gift),
        RefundDonation(
            fund_id=FUND,
            donation_id=DON,
            refund_id=RES,
            amount=cny,
            reason="捐赠人要求退回部分款项",
        ),
        RegisterVolunteer(volunteer_id=VOL, pseudonym=pseudonym, home=home),
        MakePledge(volunteer_id=VOL, pledge=near),
        AmendPledge(volunteer_id=VOL, pledge=near),
        WithdrawPledge(
            volunteer_id=VOL, reason=sealed_sample("搬家 (moving away)", f"volunteer:{VOL}")
        ),
        AcceptMatch(match_id=MATCH),
        DeclineMatch(match_id=MATCH, reason=sealed_sample("那天有事", f"volunteer:{VOL}")),
        ConfirmMatch(match_id=MATCH, minutes_served=120),
        RecordNoShow(match_id=MATCH),
        CorrectEvent(
            corrects_event_id=DON,
            reason="金额录入错误",
            replacement={"amount": {"amount_minor": 80_000, "currency": "CNY"}},
        ),
        OrganisationRegistered(
            org_id=ORG,
            kind=OrgKind.FOUNDATION,
            name="江东街道慈善基金会",
            district="鼓楼区",
            street="江东街道",
        ),
        OrganisationSuspended(org_id=ORG),
        OrganisationReinstated(org_id=ORG),
        OrganisationTokenRotated(org_id=ORG, tokens_revoked=1),
        OrganisationTokensRevoked(org_id=ORG, tokens_revoked=1),
        ReferenceTermDefined(
            kind="skill", code="it_support", label_zh="电脑手机帮忙", label_en="IT support"
        ),
        ReferenceTermDefined(
            kind="category",
            code="digital_elderly",
            label_zh="数字助老",
            label_en="Helping the elderly with phones and apps",
            district="鼓楼区",
        ),
        ReferenceTermRetired(kind="skill", code="it_support"),
        VolunteerRegistered(volunteer_id=VOL, pseudonym=pseudonym, home=home),
        NeedPosted(need_id=NEED, need=need),
        NeedAmended(need_id=NEED, need=need, changed=["urgency"]),
        NeedCancelled(need_id=NEED, reason="活动取消"),
        NeedExpired(need_id=NEED, deadline=AT),
        NeedFulfilled(need_id=NEED),
        FundOpened(fund_id=FUND, fund=fund, urgent_reserve_percent=75),
        FundReserveSet(fund_id=FUND, urgent_reserve_percent=50),
        DonationReceived(fund_id=FUND, donation_id=DON, donation=gift),
        DonationRefunded(
            fund_id=FUND,
            donation_id=DON,
            refund_id=RES,
            amount=cny,
            reason="捐赠人要求退回部分款项",
        ),
        FundsReserved(fund_id=FUND, reservation_id=RES, need_id=NEED, match_id=MATCH, amount=cny),
        ReservationReleased(fund_id=FUND, reservation_id=RES, amount=cny, reason="match declined"),
        FundsDisbursed(fund_id=FUND, reservation_id=RES, need_id=NEED, amount=cny),
        PledgeMade(volunteer_id=VOL, pledge=near),
        PledgeAmended(volunteer_id=VOL, pledge=near),
        PledgeWithdrawn(volunteer_id=VOL, reason=sealed_sample("搬家", f"volunteer:{VOL}")),
        MatchProposed(
            match_id=MATCH,
            need_id=NEED,
            supply=SupplyKind.VOLUNTEER,
            volunteer_id=VOL,
            shift=shift,
            minutes=120,
            zone="nanjing",
            rule="skills fit",
        ),
        MatchAccepted(match_id=MATCH, need_id=NEED),
        MatchDeclined(
            match_id=MATCH, need_id=NEED, reason=sealed_sample("那天有事", f"volunteer:{VOL}")
        ),
        MatchExpired(match_id=MATCH, need_id=NEED),
        MatchCompleted(match_id=MATCH, need_id=NEED, minutes_served=120),
        MatchWithdrawn(match_id=MATCH, need_id=NEED, reason="the need was cancelled"),
        NoShowRecorded(match_id=MATCH, need_id=NEED, volunteer_id=VOL),
        PostingRefused(
            posting_id=DON,
            posting_type="ReceiveDonation",
            problems=[Problem(field="fund_id", reason="no open fund has this id")],
        ),
        EventCorrected(
            corrects_event_id=DON,
            corrects_event_type="DonationReceived",
            reason="金额录入错误",
            replacement={"amount": {"amount_minor": 80_000, "currency": "CNY"}},
        ),
        ClockTicked(at=AT),
        SupplyListed(
            supply=SupplyKind.FUND,
            supply_id=FUND,
            owner_partition=2,
            version=3,
            active=True,
            fund=fund,
            net_minor=2_000_000,
            urgent_reserve_percent=75,
        ),
        SupplyRequested(
            hold_id=HOLD,
            need_id=NEED,
            need=need,
            need_zone="鼓楼区",
            from_partition=1,
            supply=SupplyKind.VOLUNTEER,
            supply_id=VOL,
            quantity=1,
        ),
        SupplyGranted(
            hold_id=HOLD, need_id=NEED, supply=SupplyKind.FUND, supply_id=FUND, quantity=300_000
        ),
        SupplyRefused(
            hold_id=HOLD,
            need_id=NEED,
            supply_id=VOL,
            reason="the volunteer's pledge, calendar or weekly limit no longer fits",
        ),
        SupplyReleased(
            hold_id=HOLD, supply_id=VOL, reason="the volunteer did not come", no_show=True
        ),
        SupplyRevoked(hold_id=HOLD, need_id=NEED, reason="the fund refunded a donation"),
        CheckpointRecorded(
            origin="community-exchange/ledger",
            tree_size=1000,
            root_hash="5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            chain_hash="d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            key_id="6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            signature="ab" * 64,
        ),
        KeyRotated(
            origin="community-exchange/ledger",
            old_public_key="3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
            new_public_key="d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            after=1000,
            old_signature="cd" * 64,
            new_signature="ef" * 64,
        ),
        MessageDeadLettered(
            topic="needs.postings",
            partition=0,
            offset=7,
            consumer="intake-needs",
            reason="payload.need.deadline: Field required (given: missing)",
            original_key_hex=str(NEED).encode().hex(),
            original_value_hex=b'{"event_type": "PostNeed"}'.hex(),
        ),
        PostNeedV1(need_id=NEED, need=f.volunteer_need()),
        *before_sealing(),
        *before_sealing_more(),
        *before_codes(),
        *before_fund_reserves(),
        MakePledgeV1(volunteer_id=VOL, pledge=f.pledge()),
        AmendPledgeV1(volunteer_id=VOL, pledge=f.pledge()),
        PledgeMadeV1(volunteer_id=VOL, pledge=f.pledge()),
        PledgeAmendedV1(volunteer_id=VOL, pledge=f.pledge()),
        SupplyListedV1(
            supply=SupplyKind.VOLUNTEER,
            supply_id=VOL,
            owner_partition=2,
            version=1,
            active=True,
            pledge=f.pledge(),
        ),
        PostingRefusedV1(
            posting_id=DON,
            posting_type="ReceiveDonation",
            reason="no open fund has this id",
            field="fund_id",
        ),
    ]


def before_sealing() -> list[Message]:
    """The last plain-text versions (docs/privacy.md), as the log holds them."""
    plain = plain_need.model_dump()
    old = plain_near.model_dump()
    m = BEFORE_SEALING
    return [
        m["RegisterVolunteer.v1"](volunteer_id=VOL, pseudonym="王师傅", home=home),
        m["VolunteerRegistered.v1"](volunteer_id=VOL, pseudonym="王师傅", home=home),
        m["MakePledge.v2"](volunteer_id=VOL, pledge=old),
        m["AmendPledge.v2"](volunteer_id=VOL, pledge=old),
        m["PledgeMade.v2"](volunteer_id=VOL, pledge=old),
        m["PledgeAmended.v2"](volunteer_id=VOL, pledge=old),
        m["SupplyListed.v2"](
            supply=SupplyKind.VOLUNTEER,
            supply_id=VOL,
            owner_partition=2,
            version=1,
            active=True,
            pledge=old,
        ),
        m["PostNeed.v2"](need_id=NEED, need=plain, repeat=Recurrence(weeks=8)),
        m["NeedPosted.v1"](need_id=NEED, need=plain),
        m["NeedAmended.v1"](need_id=NEED, need=plain, changed=["urgency"]),
        m["SupplyRequested.v1"](
            hold_id=HOLD,
            need_id=NEED,
            need=plain,
            need_zone="鼓楼区",
            from_partition=1,
            supply=SupplyKind.VOLUNTEER,
            supply_id=VOL,
            quantity=1,
        ),
    ]


def before_sealing_more() -> list[Message]:
    """The last versions with plain donor labels, notes and reasons (docs/privacy.md)."""
    m = BEFORE_SEALING_MORE
    gift = plain_gift.model_dump()
    return [
        m["ReceiveDonation.v1"](fund_id=FUND, donation_id=DON, donation=gift),
        m["DonationReceived.v1"](fund_id=FUND, donation_id=DON, donation=gift),
        m["WithdrawPledge.v1"](volunteer_id=VOL, reason="搬家 (moving away)"),
        m["PledgeWithdrawn.v1"](volunteer_id=VOL, reason="搬家"),
        m["DeclineMatch.v1"](match_id=MATCH, reason="那天有事"),
        m["MatchDeclined.v1"](match_id=MATCH, need_id=NEED, reason="那天有事"),
    ]


def before_codes() -> list[Message]:
    """The last versions whose skills and categories were closed enumerations: the same
    payloads as today's, whose codes are the enumerations' values."""
    m = BEFORE_CODES
    n = {"need_id": NEED, "need": need.model_dump()}
    v = {"volunteer_id": VOL, "pledge": near.model_dump()}
    listed = {"supply": "volunteer", "supply_id": VOL, "owner_partition": 2, "version": 1}
    return [
        m["PostNeed.v3"].model_validate({**n, "repeat": {"weeks": 8}}),
        m["NeedPosted.v2"].model_validate(n),
        m["NeedAmended.v2"].model_validate({**n, "changed": ["urgency"]}),
        m["OpenFund.v1"].model_validate({"fund_id": FUND, "fund": fund.model_dump()}),
        m["FundOpened.v1"].model_validate({"fund_id": FUND, "fund": fund.model_dump()}),
        *(m[f"{t}.v3"].model_validate(v) for t in ("MakePledge", "AmendPledge", "PledgeMade")),
        m["PledgeAmended.v3"].model_validate(v),
        m["SupplyListed.v3"].model_validate({**listed, "active": True, "pledge": v["pledge"]}),
        m["SupplyRequested.v2"].model_validate(
            {
                "hold_id": HOLD,
                **n,
                "need_zone": "鼓楼区",
                "from_partition": 1,
                "supply": "volunteer",
                "supply_id": VOL,
                "quantity": 1,
            }
        ),
    ]


def before_fund_reserves() -> list[Message]:
    """The last versions without a fund's own reserve for urgent needs."""
    m = BEFORE_FUND_RESERVES
    opened = {"fund_id": FUND, "fund": fund.model_dump()}
    return [
        m["OpenFund.v2"].model_validate(opened),
        m["FundOpened.v2"].model_validate(opened),
        m["SupplyListed.v4"].model_validate(
            {
                "supply": "volunteer",
                "supply_id": VOL,
                "owner_partition": 2,
                "version": 1,
                "active": True,
                "pledge": near.model_dump(),
            }
        ),
    ]


def envelope_json(payload: Message) -> dict[str, Any]:
    """The whole message as stored: a fixed envelope around the sample payload."""
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"golden/{payload.TYPE}/v{payload.VERSION}")
    return {
        "event_id": str(event_id),
        "event_type": payload.TYPE,
        "schema_version": payload.VERSION,
        "stream_id": "golden:sample",
        "stream_seq": 1,
        "occurred_at": "2026-12-05T02:00:00Z",
        "recorded_at": "2026-12-05T02:00:01Z",
        "actor": {"org_id": "jiangdong-foundation", "role": "foundation"},
        "correlation_id": str(event_id),
        "causation_id": None,
        "idempotency_key": None,
        "payload": payload.model_dump(mode="json"),
    }
