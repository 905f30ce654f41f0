"""Header names → fields: the Chinese names street offices use and their English ones.

A header is compared after NFKC folding, case folding and removing spaces and punctuation, so
「 每周小时上限 」, `Weekly Hours` and `weekly_hours` name the same column. A column that is
not one of the file's known columns is refused (a misspelt 技能 would otherwise be dropped
silently), and so is a column whose name says it holds personal data (电话, 身份证号, 住址,
银行卡号…): the exchange never keeps such data, so the whole file is refused before any of it
is read further, and the importer is told to delete the column (docs/privacy.md).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from services.importing.reasons import FileRefused, Problem


@dataclass(frozen=True)
class Column:
    """One column a file may have: the field it fills, its names, whether it must be there."""

    field: str
    names: tuple[str, ...]
    required: bool = False

    @property
    def shown(self) -> str:
        """How the column is named in messages: its Chinese name and its English one."""
        return f"{self.names[0]}/{self.names[1]}"


ORG_COLUMNS = (
    Column("name", ("名称", "name", "组织名称", "单位名称"), required=True),
    Column("kind", ("类型", "kind", "组织类型"), required=True),
    Column("district", ("区", "district", "所在区"), required=True),
    Column("street", ("街道", "street")),
)

VOLUNTEER_COLUMNS = (
    Column("ref", ("编号", "ref", "志愿者编号"), required=True),
    Column("pseudonym", ("称呼", "pseudonym", "化名", "昵称"), required=True),
    Column("district", ("区", "district", "所在区"), required=True),
    Column("street", ("街道", "street")),
    Column("community", ("社区", "community")),
    Column("skills", ("技能", "skills"), required=True),
    Column("availability", ("可服务时间", "availability", "服务时间"), required=True),
    Column("weekly_hour_limit", ("每周小时上限", "weekly_hours", "weekly_hour_limit", "每周时长")),
    Column("travel", ("出行范围", "travel")),
)

PERSONAL = (
    "电话",
    "手机",
    "座机",
    "联系方式",
    "身份证",
    "证件",
    "住址",
    "地址",
    "门牌",
    "银行",
    "卡号",
    "账号",
    "帐号",
    "邮箱",
    "微信",
    "qq",
    "出生",
    "phone",
    "mobile",
    "tel",
    "address",
    "idcard",
    "idnumber",
    "identity",
    "passport",
    "bank",
    "account",
    "email",
    "mail",
    "wechat",
    "birth",
)
"""Fragments of a header that say its column holds personal data."""


def folded(name: str) -> str:
    """A header as compared: NFKC, case folded, without spaces, punctuation or symbols."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "ZPSC")


def is_personal(header: str) -> bool:
    """Whether a header's name says its column holds personal data."""
    key = folded(header)
    return any(fragment in key for fragment in PERSONAL)


def map_header(headers: list[str], columns: tuple[Column, ...], line: int) -> dict[str, int]:
    """field → index of its column in the header row; raises FileRefused naming every
    personal-data, unknown, repeated or missing column (blank trailing headers are ignored)."""
    by_name = {folded(n): c for c in columns for n in c.names}
    found: dict[str, int] = {}
    problems: list[Problem] = []
    known = "、".join(c.shown for c in columns)
    for i, header in enumerate(headers):
        if not header.strip():
            continue
        column = by_name.get(folded(header))
        if column is None:
            key = "column.personal" if is_personal(header) else "column.unknown"
            problems.append(Problem(line, header, key, {"column": header, "known": known}))
        elif column.field in found:
            problems.append(Problem(line, header, "column.twice", {"column": header}))
        else:
            found[column.field] = i
    for column in columns:
        if column.required and column.field not in found:
            problems.append(Problem(line, column.shown, "column.missing", {"column": column.shown}))
    if problems:
        raise FileRefused(problems)
    return found
