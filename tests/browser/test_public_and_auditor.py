"""Issue #15 in Chromium: an auditor's pages and the public transparency site.

A fund receives a person's gift and an organisation's; three money needs in one district are
paid from it and a volunteer serves a shift there (set up through the API: the same rules,
faster). Then an auditor walks health (runs a check, sees it run, then its result), a trail
(a step to its archived event and inclusion proof), as-of, the disclosure (page, CSV, print
view) and a replay ("equal"); a visitor reads the public site in both languages without
signing in, and no page of it shows a volunteer's pseudonym, a need's title or a person's donor
label; signed-out visitors and other roles are turned away from the auditor's pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site
from tests.browser.test_web_app import PHONE, accessibility, english, shot, sign_in
from tests.browser.test_web_gaps import accepted, wide, window
from tests.e2e.harness import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
PERSON = "陈阿姨（测试捐赠人）"
ORG = "玄武区社工服务中心"
DISTRICT = "浦口区"
"""This test's own district: its fund pays only its needs, its volunteer serves only its shift
(the other browser tests work in 玄武区 on the same exchange)."""
PSEUDONYM = "周师傅测试"
TITLES = ("锁金村助餐餐费甲", "锁金村助餐餐费乙", "锁金村助餐餐费丙", "锁金村送餐志愿岗")
PUBLIC_PAGES = ("/public",)


@dataclass(frozen=True)
class Made:
    """What the story created: ids to follow, and the words no public page may show."""

    fund: str
    donation: str
    need: str
    volunteer: str


def yuan(n: int) -> dict[str, Any]:
    return {"amount_minor": n * 100, "currency": "CNY"}


def money_need(site: Site, title: str, amount: int) -> str:
    need: str = accepted(
        site,
        site.community,
        "POST",
        "/v1/needs",
        {
            "title": title,
            "kind": "money",
            "category": "elderly_meals",
            "place": {"district": DISTRICT, "street": "江浦街道"},
            "urgency": "normal",
            "people_served": 8,
            "deadline": window(15, 23, 23)["start"],
            "amount": yuan(amount),
        },
    )["need_id"]
    return need


@pytest.fixture(scope="module")
def made(site: Site) -> Made:
    # its own foundation: the other browser tests' foundation pages stay as they expect them
    foundation = site.ex.create_org("foundation", "南京市浦口区慈善基金会", DISTRICT)
    fund: str = accepted(
        site,
        foundation,
        "POST",
        "/v1/funds",
        {
            "name": "锁金村银发助餐公开基金",
            "foundation": "南京市玄武区慈善基金会",
            "categories": ["elderly_meals"],
            "districts": [DISTRICT],
        },
    )["fund_id"]
    wait_for(
        "the fund",
        lambda: site.api("GET", f"/v1/funds/{fund}", foundation).status_code == 200,
        60,
    )
    donation = ""
    for donor, amount in ((ORG, 5000), (PERSON, 3000)):
        answer = accepted(
            site,
            foundation,
            "POST",
            f"/v1/funds/{fund}/donations",
            {"donor": donor, "amount": yuan(amount)},
        )
        donation = donation or str(answer.get("donation_id", ""))
    needs = [money_need(site, t, a) for t, a in zip(TITLES[:3], (300, 400, 500), strict=True)]
    reg = accepted(
        site,
        site.community,
        "POST",
        "/v1/volunteers",
        {"pseudonym": PSEUDONYM, "home": {"district": DISTRICT}},
    )
    vid, vtoken = reg["volunteer_id"], reg["volunteer_token"]
    wait_for(
        "the volunteer",
        lambda: site.api("GET", f"/v1/volunteers/{vid}", vtoken).status_code == 200,
        60,
    )
    accepted(
        site,
        vtoken,
        "PUT",
        f"/v1/volunteers/{vid}/pledge",
        {
            "pseudonym": PSEUDONYM,
            "home": {"district": DISTRICT},
            "skills": ["meal_delivery"],
            "availability": [window(2, 9, 12)],
            "weekly_hour_limit": 6,
        },
    )
    accepted(
        site,
        site.community,
        "POST",
        "/v1/needs",
        {
            "title": TITLES[3],
            "kind": "volunteer_hours",
            "category": "elderly_meals",
            "place": {"district": DISTRICT},
            "urgency": "normal",
            "people_served": 6,
            "shift": window(2, 10, 12),
            "deadline": window(2, 12, 12)["start"],
            "volunteers_needed": 1,
            "required_skills": ["meal_delivery"],
        },
    )
    # every money need is paid: the community confirms what it received (the three at once,
    # each match confirmed once)
    amounts = dict(zip(needs, (300, 400, 500), strict=True))
    confirmed: set[str] = set()
    unpaid = dict(amounts)

    def paid() -> bool:
        mine = site.api("GET", "/v1/matches?limit=500", site.community).json().get("items", [])
        for need, amount in list(unpaid.items()):
            ms = [m for m in mine if m["need_id"] == need]
            for m in ms:
                if m["status"] in ("proposed", "accepted") and m["match_id"] not in confirmed:
                    r = site.api(
                        "POST",
                        f"/v1/matches/{m['match_id']}/confirm",
                        site.community,
                        {"amount_received": yuan(amount)},
                    )
                    if r.status_code == 202:
                        confirmed.add(m["match_id"])
            if any(m["status"] == "completed" for m in ms):
                del unpaid[need]
        return not unpaid

    try:
        wait_for("the needs of ¥300, ¥400 and ¥500 paid", paid, 120, 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; unpaid: {unpaid}") from None

    def proposed() -> str | None:
        me = site.api("GET", f"/v1/volunteers/{vid}", vtoken).json()
        return next((m["match_id"] for m in me["matches"] if m["status"] == "proposed"), None)

    match = wait_for("a proposal to the volunteer", proposed, 90, 0.5)
    accepted(site, vtoken, "POST", f"/v1/matches/{match}/accept", None)

    def served() -> bool:
        site.api("POST", f"/v1/matches/{match}/confirm", site.community, {"minutes_served": 120})
        me = site.api("GET", f"/v1/volunteers/{vid}", vtoken).json()
        return any(m["status"] == "completed" for m in me["matches"])

    wait_for("the shift's 120 minutes confirmed", served, 90, 1.0)
    return Made(fund, donation, needs[0], vid)


def reload_until(page: Page, shown: Any, what: str, timeout: float = 120) -> None:
    """Reload until `shown` (a locator) finds something: figures follow the archive."""

    def found() -> bool:
        page.reload()
        return bool(shown.count() > 0)

    wait_for(what, found, timeout, 0.5)


def run_check(page: Page, kind_heading: str, done: re.Pattern[str]) -> bool:
    """Press the check's button; True when its progress was on the page before its result."""
    card = page.locator("section.job", has=page.get_by_role("heading", name=kind_heading))
    card.get_by_role("button").click()
    page.wait_for_load_state()
    card = page.locator("section.job", has=page.get_by_role("heading", name=kind_heading))
    saw_progress = card.locator("progress").count() > 0
    expect(card.get_by_text(done)).to_be_visible(timeout=120_000)
    return saw_progress


def test_an_auditor_walks_health_trail_as_of_disclosure_and_replay(
    site: Site, browser: Any, made: Made
) -> None:
    problems: dict[str, list[str]] = {}
    context = browser.new_context(locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    sign_in(page, site, site.auditor)
    page.get_by_role("link", name="健康状况").click()
    expect(page.get_by_role("heading", name="审计：健康状况一览")).to_be_visible()

    # health: the latest checkpoint, signed under the pinned key; each check run on demand
    checkpoint = page.locator("#checkpoint")
    reload_until(page, checkpoint.get_by_text("签名有效（固定公钥）"), "a signed checkpoint")
    progress = [
        run_check(page, "完整性校验（verify）", re.compile("存档校验通过")),
        run_check(page, "序号缺口", re.compile("没有序号缺口")),
        run_check(page, "承诺检查（invariants）", re.compile("没有违反任何承诺")),
    ]
    expect(page.get_by_text("开始于").first).to_be_visible()
    problems["health"] = accessibility(page)
    shot(page, site, "30-audit-health-zh")

    # trail: the fund, a step to its archived event and the inclusion proof
    page.get_by_role("link", name="追溯").first.click()
    page.get_by_role("link", name="锁金村银发助餐公开基金").click()
    trail = page.get_by_role("table", name=re.compile("追溯："))
    expect(trail).to_contain_text("DonationReceived")
    problems["trail"] = accessibility(page)
    shot(page, site, "31-audit-trail-zh")
    trail.get_by_role("link", name="DonationReceived").first.click()
    expect(page.get_by_role("heading", name="DonationReceived")).to_be_visible()
    # a checkpoint is signed within a minute of the first unsigned event; until then the page
    # says that none covers it yet
    reload_until(page, page.get_by_text("证明有效：该事件包含在最新签名检查点的树中"), "a proof")
    expect(page.get_by_text("签名有效（固定公钥）")).to_be_visible()
    expect(page.locator("ol.proof li").first).to_be_visible()
    expect(page.locator("pre.json")).to_contain_text('"event_type": "DonationReceived"')
    problems["event"] = accessibility(page)
    shot(page, site, "32-audit-event-proof-zh")

    # as-of: now, then a moment before anything happened
    page.get_by_role("link", name="历史时点").click()
    page.get_by_role("button", name="查看").click()
    funds = page.get_by_role("table", name="基金")
    expect(funds).to_contain_text("锁金村银发助餐公开基金")
    expect(funds).to_contain_text("¥1,200.00")  # paid out of it: 300 + 400 + 500
    problems["as-of"] = accessibility(page)
    shot(page, site, "33-audit-as-of-zh")
    page.get_by_label("时点（北京时间）").fill("2001-01-01T00:00")
    page.get_by_role("button", name="查看").click()
    expect(page.get_by_role("table", name="基金")).not_to_contain_text("锁金村银发助餐公开基金")

    # disclosure: the page, its CSV, its printable view
    page.get_by_role("link", name="信息公开报告").click()
    page.get_by_label("基金名称").select_option(made.fund)
    page.get_by_role("button", name="生成报告").click()
    income = page.get_by_role("table", name="收入")
    expect(income).to_contain_text(ORG)
    expect(income).to_contain_text("个人及其他捐赠者（含匿名）")
    expect(page.get_by_role("table", name="按用途和区域的支出")).to_contain_text("¥1,200.00")
    assert PERSON not in page.content()
    problems["disclosure"] = accessibility(page)
    shot(page, site, "34-audit-disclosure-zh")
    with page.expect_download() as got:
        page.get_by_role("link", name="下载 CSV").click()
    csv = open(got.value.path(), "rb").read()  # noqa: SIM115
    assert csv.startswith(b"\xef\xbb\xbf") and ORG in csv.decode("utf-8-sig")
    assert got.value.suggested_filename.endswith(".csv")
    page.get_by_role("link", name="打印版").click()
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("table", name="收入")).to_be_visible()
    shot(page, site, "35-audit-disclosure-print-zh")
    page.emulate_media(media="screen")

    # replay: start it, watch it, and it is equal
    page.goto(site.url + "/audit/replay")
    progress.append(run_check(page, "重放", re.compile("相同：余额和撮合决定与线上一致")))
    expect(page.get_by_role("table", name="各表比对结果")).to_contain_text("rm_needs")
    problems["replay"] = accessibility(page)
    shot(page, site, "36-audit-replay-zh")

    # the same pages in English
    english(page)
    expect(
        page.get_by_text("Equal: balances and matching decisions are what live says")
    ).to_be_visible()
    page.goto(site.url + "/audit")
    expect(page.get_by_role("heading", name="Audit: health at a glance")).to_be_visible()
    problems["health-en"] = accessibility(page)
    shot(page, site, "37-audit-health-en")
    print(f"checks whose progress was seen before their result: {progress}")
    assert not [p for ps in problems.values() for p in ps], problems


def published_checkpoints_verify(site: Site, shown_key: str) -> None:
    """The checkpoints the public site hands out are signed by the key it shows (the one the
    exchange pinned), and each is offered alone in the shape `verify --held` reads."""
    from services.audit.evidence.checkpoint import problem, public_key_from_hex
    from services.audit.evidence.proofs import checkpoint_from_json

    key = public_key_from_hex(shown_key)
    published = httpx.get(site.url + "/public/checkpoints.json", timeout=30).json()
    assert published["checkpoints"] and published["key_rotations"] == []
    for cp in published["checkpoints"]:
        assert problem(checkpoint_from_json(cp), key) is None, cp
    newest = published["checkpoints"][0]
    one = httpx.get(f"{site.url}/public/checkpoints/{newest['tree_size']}.json", timeout=30)
    assert one.status_code == 200 and checkpoint_from_json(one.json()) == checkpoint_from_json(
        newest
    )
    assert httpx.get(site.url + "/public/checkpoints/0.json", timeout=30).status_code in (200, 404)


def test_the_public_site_in_both_languages_without_signing_in(
    site: Site, browser: Any, made: Made
) -> None:
    problems: dict[str, list[str]] = {}
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(site.url + "/public")
    reload_until(page, page.get_by_text("¥1,200.00"), "the public totals with the payments")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="公开透明")).to_be_visible()
    expect(page.get_by_role("table", name="按区域")).to_contain_text(DISTRICT)
    expect(page.get_by_role("img", name="各区域已支出金额")).to_be_visible()
    expect(page.get_by_role("img", name="每月收到善款")).to_be_visible()
    expect(page.get_by_role("img", name="各区域志愿服务时长")).to_contain_text("2")
    expect(page.locator("#key")).to_contain_text("指纹")
    expect(page.locator("#key")).to_contain_text("至今没有交接")
    expect(page.locator("#checkpoints")).to_contain_text("覆盖的事件数")
    published_checkpoints_verify(site, page.locator("#key code.hash").nth(1).inner_text())
    problems["public-zh"] = accessibility(page)
    shot(page, site, "40-public-zh")
    page.get_by_role("link", name="锁金村银发助餐公开基金").click()
    expect(page.get_by_role("table", name="资助的需求：按区域")).to_contain_text("¥1,200.00")
    problems["public-fund-zh"] = accessibility(page)
    shot(page, site, "41-public-fund-zh")

    english(page)
    expect(page.get_by_role("heading", name="锁金村银发助餐公开基金")).to_be_visible()
    expect(page.get_by_text("Earmarks")).to_be_visible()
    page.get_by_role("link", name="Back to the public figures").click()
    expect(page.get_by_role("heading", name="Transparency")).to_be_visible()
    expect(page.get_by_role("img", name="Paid out by district")).to_be_visible()
    problems["public-en"] = accessibility(page)
    shot(page, site, "42-public-en")

    phone = browser.new_context(locale="zh-CN", viewport=PHONE, is_mobile=True).new_page()
    phone.goto(site.url + "/public")
    expect(phone.get_by_role("heading", name="公开透明")).to_be_visible()
    shot(phone, site, "43-public-phone-zh")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], wide(phone)
    assert not [p for ps in problems.values() for p in ps], problems


def test_no_public_page_names_a_person_or_a_need(site: Site, made: Made) -> None:
    front = httpx.get(site.url + "/public", timeout=30)
    assert front.status_code == 200 and "public" in front.headers["cache-control"]
    links = set(re.findall(r'href="(/public[^"#?]*)"', front.text))
    pages = {"/public", *links}
    assert f"/public/funds/{made.fund}" in pages
    for lang in ("zh-CN", "en"):
        for path in sorted(pages):
            r = httpx.get(site.url + path, cookies={"cx_lang": lang}, timeout=30)
            assert r.status_code == 200, path
            for secret in (PSEUDONYM, PERSON, *TITLES):
                assert secret not in r.text, f"{secret} on {path} ({lang})"
            assert made.volunteer not in r.text and made.need not in r.text, path


def test_the_auditor_pages_refuse_strangers_and_other_roles(site: Site, browser: Any) -> None:
    pages = ("/audit", "/audit/trail", "/audit/as-of", "/audit/disclosure", "/audit/replay")
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    for path in pages:
        page.goto(site.url + path)
        expect(page).to_have_url(site.url + "/")  # signed out: to the sign-in page
    sign_in(page, site, site.foundation)
    for path in pages:
        answer = page.goto(site.url + path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("alert")).to_contain_text("只有审计机构可以查看此页面")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    started = context.request.post(site.url + "/audit/checks/replay", form={"csrf": csrf or ""})
    assert started.status == 403
    api = site.api("GET", "/v1/audit/events/00000000-0000-4000-8000-000000000000", site.community)
    assert api.status_code == 403
