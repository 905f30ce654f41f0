"""The auditor's background checks: a job runs, reports progress, then is done or failed,
and a kind already running is never started twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.web.jobs import KINDS, Job, JobBoard, JobStateError

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)


def test_a_job_reports_progress_then_its_result() -> None:
    job = Job("verify", NOW)
    assert job.running and job.percent is None
    job.advance(50, 200)
    assert job.percent == 25
    job.advance(40)  # a late, smaller report never moves it back
    assert job.done == 50
    job.advance(200, 200)
    assert job.percent == 99  # not 100 before it is done
    job.finish({"ok": True}, NOW)
    assert job.state == "done" and job.percent == 100 and job.result == {"ok": True}
    job.advance(300, 300)  # the worker's last word after finishing changes nothing
    assert job.done == 200


def test_a_finished_job_cannot_finish_or_fail_again() -> None:
    job = Job("replay", NOW)
    job.fail("no database", NOW)
    assert job.state == "failed" and job.error == "no database"
    with pytest.raises(JobStateError):
        job.finish({"ok": True}, NOW)
    with pytest.raises(JobStateError):
        job.fail("again", NOW)


def test_one_job_at_a_time_per_kind() -> None:
    board = JobBoard()
    first, new = board.begin("verify", NOW)
    assert new
    again, new_again = board.begin("verify", NOW)
    assert again is first and not new_again
    other, other_new = board.begin("replay", NOW)  # another kind runs beside it
    assert other_new and other is not first
    first.finish({"ok": True}, NOW)
    later, later_new = board.begin("verify", NOW)  # once done, a new run may start
    assert later_new and later is not first and board.latest["verify"] is later
    with pytest.raises(ValueError, match="no such check"):
        board.begin("format-disk", NOW)


def test_the_work_runs_off_the_event_loop_and_its_answer_is_kept() -> None:
    async def scenario() -> tuple[Job, Job]:
        board = JobBoard()

        def works(job: Job) -> dict[str, object]:
            job.advance(1, 2)
            return {"ok": True, "headline": "equal"}

        def breaks(job: Job) -> dict[str, object]:
            raise OSError("connection refused")

        done, failed = board.start("replay", works), board.start("verify", breaks)
        for _ in range(200):
            if not done.running and not failed.running:
                break
            await asyncio.sleep(0.01)
        return done, failed

    done, failed = asyncio.run(scenario())
    assert done.state == "done" and done.result == {"ok": True, "headline": "equal"}
    assert failed.state == "failed" and failed.error == "OSError: connection refused"


def test_every_check_and_result_has_its_words() -> None:
    from services.web.i18n import LANGUAGES, catalogue

    headlines = {
        "verify": ("no_key", "broken", "derived", "verified"),
        "invariants": ("clean", "violations"),
        "sequences": ("no_gaps", "gaps"),
        "replay": ("equal", "different"),
    }
    assert set(headlines) == set(KINDS)
    wanted = {f"audit.check.{k}" for k in KINDS} | {f"audit.check.{k}.what" for k in KINDS}
    wanted |= {f"audit.check.{k}.{h}" for k, hs in headlines.items() for h in hs}
    wanted |= {f"audit.nav.{n}" for n in ("health", "trail", "asof", "disclosure", "replay")}
    wanted |= {f"audit.subject.{s}" for s in ("donation", "fund", "need", "volunteer")}
    sections = ("opening", "income", "refunds", "spending", "closing")
    wanted |= {f"audit.disclosure.{s}" for s in sections}
    for lang in LANGUAGES:
        assert not sorted(wanted - set(catalogue(lang))), lang
