"""The operator's pure decisions (#16): what suspending or reinstating records, what the
operator's list calls an organisation, who counts as an operator, and where the acts go."""

from __future__ import annotations

import uuid

import pytest

from schemas.common import Role
from schemas.messages import (
    OrganisationReinstated,
    OrganisationSuspended,
    OrganisationTokenRotated,
    OrganisationTokensRevoked,
    OrgKind,
)
from schemas.topics import ORGANISATIONS_EVENTS
from services.cli import parser
from services.identity import Principal
from services.operator import status_of, suspension_change

ORG = uuid.UUID("77777777-7777-4777-8777-777777777777")


def test_suspending_an_active_organisation_records_its_suspension() -> None:
    assert suspension_change(ORG, suspended=False, suspend=True) == OrganisationSuspended(
        org_id=ORG
    )


def test_reinstating_a_suspended_organisation_records_its_reinstatement() -> None:
    assert suspension_change(ORG, suspended=True, suspend=False) == OrganisationReinstated(
        org_id=ORG
    )


@pytest.mark.parametrize("state", [True, False])
def test_a_retried_act_records_nothing_twice(state: bool) -> None:
    assert suspension_change(ORG, suspended=state, suspend=state) is None


@pytest.mark.parametrize(
    ("suspended", "live", "status"),
    [(True, 1, "suspended"), (True, 0, "suspended"), (False, 0, "no token"), (False, 2, "active")],
)
def test_the_operators_list_says_whether_an_organisation_can_act(
    suspended: bool, live: int, status: str
) -> None:
    assert status_of(suspended, live) == status


def test_only_a_system_principal_is_an_operator_and_organisations_are_never_one() -> None:
    assert Principal(ORG, Role.SYSTEM, None, "运营-王芳").is_operator
    for role in Role:
        if role is not Role.SYSTEM:
            assert not Principal(ORG, role, OrgKind.FOUNDATION).is_operator


def test_the_operators_acts_are_on_the_organisations_topic_with_no_token_in_them() -> None:
    acts = (
        OrganisationSuspended,
        OrganisationReinstated,
        OrganisationTokenRotated,
        OrganisationTokensRevoked,
    )
    assert set(acts) <= set(ORGANISATIONS_EVENTS.messages)
    for act in acts:
        assert not {f for f in act.model_fields if "token" in f and f != "tokens_revoked"}


@pytest.mark.parametrize("action", ["suspend", "reinstate", "revoke", "rotate-token"])
def test_the_command_line_names_an_organisation_for_each_act(action: str) -> None:
    args = parser().parse_args(["orgs", action, "江东街道慈善基金会"])
    assert args.orgs_command == action and args.org == "江东街道慈善基金会"


def test_the_command_line_makes_operators() -> None:
    args = parser().parse_args(["operators", "create", "运营-王芳"])
    assert args.name == "运营-王芳"


def test_the_organisations_topic_is_the_registrys() -> None:
    """services.identity spells the topic's name out (a one-shot command imports no registry):
    it must be the registry's."""
    from schemas.topics import ORGANISATIONS_EVENTS
    from services.identity import ORGANISATIONS_TOPIC

    assert ORGANISATIONS_EVENTS.name == ORGANISATIONS_TOPIC
