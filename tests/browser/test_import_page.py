"""The upload page on a 360 px phone (docs/import.md): a community checks a GB18030 file with a
bad row, reads the row's line, column and reason in the table, imports the good rows, and gets
the sign-ins once, with a download; nothing scrolls sideways and axe-core finds nothing
serious."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.browser.test_web_app import PHONE, accessibility, shot, sign_in
from tests.browser.test_web_gaps import wide

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# 溧水区, which no other browser story uses: they share one exchange, and an imported 送餐
# volunteer in 玄武区 took the shift test_web_app's volunteer waits for
FILE = "\r\n".join(
    [
        "编号,称呼,区,街道,技能,可服务时间,每周小时上限",
        "SJ-001,钱师傅,溧水区,永阳街道,送餐、驾驶,周一至周五 09:00-12:00,6",
        "SJ-002,孙阿姨,溧水区,永阳街道,飞行,每天 09:00-10:00,",
    ]
).encode("gb18030")


def test_a_community_imports_volunteers_from_a_file_on_a_phone(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in(page, site, site.community)
    page.get_by_role("link", name="从表格批量导入志愿者").click()
    expect(page).to_have_url(re.compile(r"/imports$"))

    file = tmp_path / "锁金新村志愿者.csv"
    file.write_bytes(FILE)
    page.get_by_label("文件").set_input_files(str(file))
    page.get_by_role("button", name="检查文件").click()
    row = page.get_by_role("row", name=re.compile("技能"))
    expect(row).to_contain_text("3")
    expect(row).to_contain_text("飞行")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], wide(page)
    assert accessibility(page) == []
    shot(page, site, "import-check-phone")

    page.get_by_role("button", name="导入 1 位志愿者").click()
    expect(page.get_by_role("heading", name="新志愿者的登录口令")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("SJ-001"))).to_contain_text("cx_")
    with page.expect_download() as download:
        page.get_by_role("link", name="下载登录口令（CSV）").click()
    saved = tmp_path / "sign-ins.csv"
    download.value.save_as(saved)
    assert "SJ-001" in saved.read_text(encoding="utf-8-sig")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], wide(page)
    assert accessibility(page) == []
    shot(page, site, "import-signins-phone")
    context.close()
