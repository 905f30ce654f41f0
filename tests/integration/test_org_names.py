"""`exchange orgs create` registers a name once: the same name again, or one that reads the
same, is refused with the existing organisation named, and no second token is issued for it
(`rotate-token` is how an organisation gets a new one)."""

from __future__ import annotations

import asyncio

import pytest

from services.cli import main
from services.demo.loader import register_organisations, scenario
from tests.integration.conftest import query

pytestmark = pytest.mark.integration


def create(kind: str, name: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(["orgs", "create", "--kind", kind, "--name", name, "--district", "鼓楼区"])
    return int(done.value.code or 0)


def live_tokens(dsn: str) -> int:
    return int(query(dsn, "SELECT count(*) FROM access_tokens WHERE revoked_at IS NULL"))


def test_the_same_name_again_is_refused_and_issues_no_token(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert create("foundation", "江东街道慈善基金会") == 0
    org_id = query(database_url, "SELECT org_id::text FROM organisations")
    capsys.readouterr()

    assert create("foundation", "江东街道慈善基金会") == 2
    out = capsys.readouterr()
    assert "token" not in out.out and "cx_" not in out.out + out.err
    assert "already registered" in out.err and org_id in out.err
    assert "rotate-token" in out.err
    assert live_tokens(database_url) == 1
    # another kind does not make the same name another organisation
    assert create("community", "江东街道慈善基金会") == 2
    assert query(database_url, "SELECT count(*) FROM organisations") == 1


@pytest.mark.parametrize(
    "look_alike",
    [
        "江东街道 慈善基金会",  # a space
        "江东街道\u3000慈善基金会",  # an ideographic space
        "江东街道慈善基金会。",  # punctuation
        "「江东街道慈善基金会」",
        "江东街道-慈善基金会",
    ],
)
def test_a_name_that_reads_the_same_is_refused(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    look_alike: str,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert create("foundation", "江东街道慈善基金会") == 0
    capsys.readouterr()
    assert create("foundation", look_alike) == 2
    err = capsys.readouterr().err
    assert "looks the same as foundation '江东街道慈善基金会'" in err, err
    assert live_tokens(database_url) == 1


@pytest.mark.parametrize("hidden", ["江东街道\u200b慈善基金会", "\u2060江东街道慈善基金会"])
def test_a_name_with_invisible_characters_is_refused(
    database_url: str, monkeypatch: pytest.MonkeyPatch, hidden: str
) -> None:
    """The name's own rules refuse these before they are compared (and `name_key` drops them,
    should a name ever come in by another way)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert create("foundation", "江东街道慈善基金会") == 0
    assert create("foundation", hidden) == 2
    assert live_tokens(database_url) == 1


def test_width_and_case_do_not_make_another_name(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert create("social-org", "JD社工服务中心") == 0
    for other in ("ＪＤ社工服务中心", "jd社工服务中心", "Jd 社工服务中心"):
        assert create("social-org", other) == 2
    # a name that is really different is registered
    assert create("social-org", "JX社工服务中心") == 0
    assert create("community", "江东社区") == 0
    assert create("community", "江东社区居委会") == 0
    assert query(database_url, "SELECT count(*) FROM organisations") == 4


def test_the_demo_loaded_again_rotates_its_organisations_tokens(database_url: str) -> None:
    """`exchange up --demo` loads the demo on every start: found organisations get a new token
    (the old one stops), as `rotate-token` would give them, never a second one."""
    orgs = scenario()["organisations"]
    first = asyncio.run(register_organisations(database_url, orgs))
    again = asyncio.run(register_organisations(database_url, orgs))
    assert set(first) == set(again) and not set(first.values()) & set(again.values())
    assert query(database_url, "SELECT count(*) FROM organisations") == len(orgs)
    assert live_tokens(database_url) == len(orgs) + 1  # and the demo operator's, rotated too
