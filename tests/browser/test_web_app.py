"""The people the exchange serves, clicking through it in Chromium, in both languages.

A foundation opens a fund and records a donation (Chinese); a community posts a volunteer
shift (English); a volunteer on a 360 px phone sees the proposal and accepts it; the community
confirms the minutes. Also: refusals show their reason next to the field, signed-out visitors
and wrong roles are turned away, a forged cross-site post is refused, and axe-core finds no
serious or critical accessibility violation on any main page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site
from tests.e2e.harness import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
NANJING = ZoneInfo("Asia/Shanghai")
PHONE = {"width": 360, "height": 740}
AXE = Path(__import__("axe_playwright_python").__file__).parent / "axe.min.js"


def sign_in(page: Page, site: Site, token: str) -> None:
    page.goto(site.url + "/")
    page.get_by_label(re.compile("登录口令|Sign-in token")).fill(token)
    page.get_by_role("button", name=re.compile("^(登录|Sign in)$")).click()
    expect(page).to_have_url(re.compile(r"/home"))


def english(page: Page) -> None:
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def shot(page: Page, site: Site, name: str) -> None:
    page.screenshot(path=str(site.shots / f"{name}.png"), full_page=True)


def accessibility(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page (its rules, run in the page)."""
    # evaluated by the driver, not as a <script>: the pages' CSP rightly refuses inline code
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def reloaded(page: Page) -> bool:
    """Reload the page; False while a form's redirect is still under way (the next try
    reloads), never an error."""
    try:
        page.wait_for_load_state()
        page.reload()
    except PlaywrightError:
        return False
    return True


def until_shown(page: Page, text: re.Pattern[str] | str, what: str, timeout: float = 90) -> None:
    """Reload until `text` is on the page (a decision or a match takes a moment)."""

    def shown() -> bool:
        return reloaded(page) and page.get_by_text(text).count() > 0

    wait_for(what, shown, timeout=timeout, interval=0.5)


def test_a_shift_from_fund_to_volunteer_in_both_languages(site: Site, browser: Any) -> None:
    problems: dict[str, list[str]] = {}

    # the foundation, in Chinese (the default): opens a fund, records a donation
    desk = browser.new_context(locale="zh-CN")
    page = desk.new_page()
    page.goto(site.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    problems["signin"] = accessibility(page)
    shot(page, site, "01-signin-zh")
    sign_in(page, site, site.foundation)
    page.get_by_label("基金名称").fill("锁金村银发助餐基金")
    page.locator("form[action='/funds']").get_by_label("银发助餐").check()
    page.get_by_label("限定区域").fill("玄武区")
    page.get_by_role("button", name="设立基金").click()
    until_shown(page, "锁金村银发助餐基金", "the fund to be opened")
    page.get_by_label("捐赠方").fill("锁金村社区居民")
    page.get_by_label("金额（元）").fill("8000")
    page.get_by_role("button", name="登记捐赠").click()
    until_shown(page, "¥8,000.00", "the donation to be available")
    problems["foundation"] = accessibility(page)
    shot(page, site, "02-foundation-zh")

    # the community registers a volunteer and hands over the sign-in (shown once, as a QR code)
    office = browser.new_context(locale="en")
    page = office.new_page()
    sign_in(page, site, site.community)
    english(page)
    page.get_by_label("Name to be called by").fill("李阿姨")
    page.locator("#h-register").locator("..").get_by_label("District").fill("玄武区")
    page.locator("#h-register").locator("..").get_by_label("Street").fill("锁金村街道")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("img", name="Volunteer sign-in QR code")).to_be_visible()
    shot(page, site, "03a-volunteer-registered-en")
    vtoken = page.locator("code.token").inner_text().strip()
    page.goto(site.url + "/home")

    # the volunteer scans it on a phone: signed in, the token gone from the address bar
    phone = browser.new_context(locale="zh-CN", viewport=PHONE, is_mobile=True, has_touch=True)
    vpage = phone.new_page()
    vpage.goto(f"{site.url}/#token={vtoken}")
    expect(vpage).to_have_url(re.compile(r"/home$"))
    assert vtoken not in vpage.url
    # they offer tomorrow morning, meal delivery, in their district
    tomorrow = (datetime.now(NANJING) + timedelta(days=1)).weekday()
    vpage.locator(f'input[name="slots"][value="{tomorrow}-morning"]').check()
    vpage.get_by_label("送餐").check()
    vpage.get_by_role("button", name="保存").click()
    until_shown(vpage, "已提交并受理", "the pledge to be accepted")
    problems["volunteer-pledge"] = accessibility(vpage)
    shot(vpage, site, "03b-volunteer-pledge-phone-zh")
    vpage.goto(site.url + "/home")
    expect(vpage.get_by_text("暂时没有新的推荐")).to_be_visible()
    vpage.evaluate("window.notReloaded = true")

    # the community, in English: posts tomorrow's meal-delivery shift
    need_form = page.locator("#h-post").locator("..")  # each posted need has its amend form
    need_form.get_by_label("Title").fill("Lunch delivery for Suojin elders")
    need_form.get_by_label("Category").select_option("elderly_meals")
    need_form.get_by_label("District").fill("玄武区")
    need_form.get_by_label("Street").fill("锁金村街道")
    need_form.get_by_label("Meal delivery").check()
    need_form.get_by_role("button", name="Post", exact=True).click()
    until_shown(page, "Lunch delivery for Suojin elders", "the need to be posted")
    problems["community"] = accessibility(page)
    shot(page, site, "03-community-en")

    # the proposal appears on the volunteer's phone by itself (the event stream), no reload
    expect(vpage.get_by_role("button", name="接受")).to_be_visible(timeout=90_000)
    assert vpage.evaluate("window.notReloaded === true"), "the page was not reloaded"
    expect(vpage.get_by_text("Lunch delivery for Suojin elders")).to_be_visible()
    problems["volunteer"] = accessibility(vpage)
    shot(vpage, site, "04-volunteer-phone-zh")
    accept = vpage.get_by_role("button", name="接受")
    box = accept.bounding_box()
    assert box is not None and box["height"] >= 44, "a touch target of at least 44 px"
    assert vpage.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    accept.click()
    until_shown(vpage, "已接受", "the acceptance to be recorded")

    # the community confirms the minutes served
    until_shown(page, "Minutes served", "the accepted match on the community's page")
    page.get_by_label("Minutes served").fill("120")
    page.get_by_role("button", name="Confirm done").click()
    until_shown(page, "Fulfilled", "the need to be fulfilled")
    shot(page, site, "05-community-done-en")

    # a money need in the fund's district: the foundation sees where its money goes
    need_form.get_by_label("Money", exact=True).check()
    need_form.get_by_label("Title").fill("Meal subsidies for Suojin elders")
    need_form.get_by_label("District").fill("玄武区")
    need_form.get_by_label("Amount (yuan)").fill("300")
    need_form.get_by_role("button", name="Post", exact=True).click()
    until_shown(page, "Meal subsidies for Suojin elders", "the money need to be posted")
    desk_page = desk.new_page()
    desk_page.goto(site.url + "/home")
    until_shown(desk_page, "资金去向", "the foundation's money to be matched to the need")
    expect(desk_page.get_by_role("img", name="按区")).to_be_visible()
    shot(desk_page, site, "07-foundation-flows-zh")

    # the foundation opens the fund's history and refunds part of the gift
    desk_page.get_by_role("link", name="锁金村银发助餐基金").click()
    expect(desk_page.get_by_role("table", name="资金往来明细")).to_contain_text("收到捐赠")
    desk_page.get_by_label("退回金额（元）").fill("500")
    desk_page.get_by_label("退回原因").fill("捐赠人要求退回部分")
    desk_page.get_by_role("button", name="退回").click()
    until_shown(desk_page, "¥7,200.00", "the refund to leave the fund")
    expect(desk_page.get_by_role("table", name="资金往来明细")).to_contain_text("退回捐赠")
    # and holds 40 % of it back for urgent needs: the balance shows the share and the amount
    expect(desk_page.get_by_text("为紧急需求保留")).to_be_visible()
    desk_page.get_by_label("保留比例（%）").fill("40")
    desk_page.get_by_role("button", name="保存保留比例").click()
    until_shown(desk_page, re.compile(r"40 %（¥[\d,]+\.\d\d）"), "the reserve to be shown")
    problems["fund"] = accessibility(desk_page)
    shot(desk_page, site, "08-fund-history-zh")

    assert not [p for ps in problems.values() for p in ps], problems


def test_a_refused_posting_shows_its_reason_next_to_the_field(site: Site, browser: Any) -> None:
    page = browser.new_context(locale="en").new_page()
    sign_in(page, site, site.community)
    english(page)
    post = page.locator("form[action='/needs']")  # each posted need has its own amend form
    post.get_by_label("Money", exact=True).check()
    post.get_by_label("Title").fill("Emergency kits")
    post.get_by_label("Amount (yuan)").fill("12.345")
    post.get_by_role("button", name="Post", exact=True).click()
    error = page.locator("#e-amount")
    expect(error).to_contain_text("at most two decimals")
    expect(page.locator("#f-amount")).to_have_attribute("aria-invalid", "true")

    # the API's own refusal, with the field it names: a shift that ends before it starts
    post.get_by_label("Volunteer shift").check()
    post.get_by_label("Title").fill("Evening patrol")
    post.get_by_label("Start").fill("20:00")
    post.get_by_label("End").fill("18:00")
    post.get_by_role("button", name="Post", exact=True).click()
    expect(page.locator(".error").first).to_be_visible()
    assert page.url.endswith("/needs")
    shot(page, site, "06-refused-en")

    # a money need posted, then cancelled with its reason
    page.goto(site.url + "/home")
    post.get_by_label("Money", exact=True).check()
    post.get_by_label("Title").fill("Winter quilts fund")
    post.get_by_label("Amount (yuan)").fill("1200.50")
    post.get_by_role("button", name="Post", exact=True).click()
    until_shown(page, "Winter quilts fund", "the money need to be posted")
    # the same again: posted (never merged), with a warning that it looks like a duplicate
    post.get_by_label("Money", exact=True).check()
    post.get_by_label("Title").fill("Winter quilts fund")
    post.get_by_label("Amount (yuan)").fill("1200.50")
    post.get_by_role("button", name="Post", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("looks like one you posted recently")
    card = page.locator("li.card", has_text="Winter quilts fund").first
    card.get_by_text("Cancel this need").click()
    card.get_by_label("Why").fill("Donated in kind instead")
    card.get_by_role("button", name="Cancel the need").click()
    until_shown(page, "Cancelled", "the need to be cancelled")

    # a weekly need: one form, one need per week
    post.get_by_label("Volunteer shift").check()
    post.get_by_label("Title").fill("Saturday lunches at the canteen")
    post.get_by_label("Start").fill("10:00")
    post.get_by_label("End").fill("12:00")
    post.get_by_label("Repeat weekly (weeks)").fill("3")
    post.get_by_role("button", name="Post", exact=True).click()

    def three() -> bool:
        if not reloaded(page):
            return False
        return page.locator("li.card", has_text="Saturday lunches at the canteen").count() == 3

    wait_for("three weekly occurrences", three, timeout=90, interval=1.0)


def test_strangers_and_wrong_roles_and_forged_posts_are_turned_away(
    site: Site, browser: Any
) -> None:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(site.url + "/home")
    expect(page).to_have_url(site.url + "/")  # signed out: to the sign-in page

    page.goto(site.url + "/")
    page.get_by_label("登录口令").fill("cx_not-a-token")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("口令无效")

    # a community may not open a fund: the API's own 403, shown on the page
    sign_in(page, site, site.community)
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    answer = context.request.post(
        site.url + "/funds", form={"csrf": csrf or "", "name": "不该有的基金"}
    )
    assert answer.status == 403

    # a form posted from another site carries no CSRF secret (and no cookie, being
    # SameSite=Strict; here the cookie is sent anyway, as the worst case)
    forged = context.request.post(site.url + "/needs", form={"title": "伪造"})
    assert forged.status == 403

    # signing out ends the session: the old cookie opens nothing
    page.goto(site.url + "/home")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(site.url + "/")
    page.goto(site.url + "/home")
    expect(page).to_have_url(site.url + "/")
    cookies = {c["name"]: c for c in context.cookies()}
    assert "cx_session" not in cookies


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_role_has_its_page_in_both_languages(site: Site, browser: Any, lang: str) -> None:
    """Each role's home renders in the language chosen, with no serious accessibility issue."""
    from services.web.i18n import Translator

    t = Translator(lang)
    reg = site.api(
        "POST",
        "/v1/volunteers",
        site.social_org,
        {"pseudonym": "张师傅", "home": {"district": "玄武区"}},
    )
    assert reg.status_code == 202, reg.text
    roles = {
        "foundation": (site.foundation, "foundation.title"),
        "community": (site.community, "community.title"),
        "social_org": (site.social_org, "register.title"),
        "volunteer": (reg.json()["volunteer_token"], "volunteer.title"),
        "auditor": (site.auditor, "overview.title"),
    }
    problems = {}
    for role, (token, heading) in roles.items():
        context = browser.new_context(viewport=PHONE if role == "volunteer" else None)
        page = context.new_page()
        sign_in(page, site, token)
        if lang == "en":
            english(page)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("heading", name=t(heading))).to_be_visible()
        if role == "auditor":  # the operator's view: the health of every service
            expect(page.get_by_role("table", name=t("overview.health"))).to_be_visible()
        problems[role] = accessibility(page)
        shot(page, site, f"10-{role}-{lang}")
        context.close()
    assert not [p for ps in problems.values() for p in ps], problems
