"""Which services share a process (services/composition.py): every service runs exactly once
in either composition, in the order `exchange up` starts them."""

from __future__ import annotations

from services import SERVICES
from services.composition import STREAMS, members, processes


def test_apart_is_one_process_per_service() -> None:
    assert processes("apart") == {name: (name,) for name in SERVICES}


def test_together_runs_the_intake_services_and_the_router_in_one_process() -> None:
    together = processes("together")
    assert list(together) == ["gateway", STREAMS, "matcher-1", "matcher-2", "ledger"]
    assert together[STREAMS] == (
        "intake-needs",
        "intake-donations",
        "intake-pledges",
        "matcher-router",
    )
    every = [service for inside in together.values() for service in inside]
    assert sorted(every) == sorted(SERVICES), "each service runs once, none is left out"


def test_members_of_a_process_of_its_own_is_itself() -> None:
    assert members("ledger") == ("ledger",)
    assert members(STREAMS) == processes("together")[STREAMS]
