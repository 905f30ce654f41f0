"""Organisations of 五社联动: foundations, communities and street offices, social organisations,
and auditors, each registered with the district (and street) it belongs to."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar

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
