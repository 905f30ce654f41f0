"""Organisations of 五社联动: foundations, communities and street offices, social organisations,
and auditors, each registered with the district (and street) it belongs to; and what the
exchange's operator does to them afterwards (suspend, reinstate, re-issue or revoke tokens)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field

from schemas.common import Name, PlaceName
from schemas.message import Message


class OrgKind(StrEnum):
    """What kind of organisation acts; it decides what the organisation may post and read."""

    FOUNDATION = "foundation"  # 街道基金会, 慈善会
    COMMUNITY = "community"  # 社区居委会
    STREET_OFFICE = "street_office"  # 街道办事处
    SOCIAL_ORG = "social_org"  # 社会工作服务中心 and other social organisations
    AUDITOR = "auditor"


class OrganisationRegistered(Message):
    """An operator registered an organisation, which may now act in its role. There is no
    command for it: registering decides nothing beyond what the operator typed, and the bearer
    token is issued outside the log."""

    TYPE: ClassVar[str] = "OrganisationRegistered"
    org_id: uuid.UUID
    kind: OrgKind
    name: Name
    district: PlaceName
    street: PlaceName | None = None


class OrganisationSuspended(Message):
    """The exchange's operator suspended an organisation: from this event on, every request
    with its token (or a web session opened with one) is refused, until it is reinstated.
    Its tokens are not revoked: reinstating lets the same token work again. The envelope's
    actor names the operator who did it."""

    TYPE: ClassVar[str] = "OrganisationSuspended"
    org_id: uuid.UUID


class OrganisationReinstated(Message):
    """The exchange's operator lifted an organisation's suspension: its tokens that were not
    revoked work again. The envelope's actor names the operator."""

    TYPE: ClassVar[str] = "OrganisationReinstated"
    org_id: uuid.UUID


class OrganisationTokenRotated(Message):
    """The exchange's operator issued an organisation a new bearer token; every earlier one
    stopped working. Neither token nor its hash is in the log: only that it happened, how many
    working tokens stopped, and (in the envelope) who did it."""

    TYPE: ClassVar[str] = "OrganisationTokenRotated"
    org_id: uuid.UUID
    tokens_revoked: Annotated[int, Field(ge=0, le=1_000_000)]


class OrganisationTokensRevoked(Message):
    """The exchange's operator revoked every bearer token of an organisation; it cannot act
    until it is issued a new one (a rotation). No token or hash is in the log."""

    TYPE: ClassVar[str] = "OrganisationTokensRevoked"
    org_id: uuid.UUID
    tokens_revoked: Annotated[int, Field(ge=0, le=1_000_000)]
