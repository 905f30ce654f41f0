"""Why a file or a row is refused, in the importer's language (zh-CN by default, English).

A problem is kept as a symbolic key and its values, and turned into text only when it is shown,
so one dry run can be reported in either language. The catalogue is small and lives here rather
than in the web app's .po files: the command line and the HTTP API use it without the web app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"

REASONS: dict[str, tuple[str, str]] = {
    # the file as a whole
    "file.empty": ("文件是空的，没有表头行", "the file is empty: no header row"),
    "file.encoding": (
        "无法识别文件编码：请另存为 UTF-8 或 GB18030 编码的 CSV",
        "cannot read the file's encoding: save it as CSV in UTF-8 or GB18030",
    ),
    "file.xls": (
        "不支持旧版 Excel（.xls）文件：请另存为 .xlsx 或 CSV",
        "old Excel (.xls) files are not read: save it as .xlsx or CSV",
    ),
    "file.xlsx": (
        "无法读取这个 Excel 文件：{error}",
        "cannot read this Excel file: {error}",
    ),
    "file.csv": ("无法读取这个 CSV 文件：{error}", "cannot read this CSV file: {error}"),
    "file.too_many_rows": (
        "行数太多：一次最多导入 {most} 行，请拆分文件",
        "too many rows: at most {most} per import; split the file",
    ),
    "file.type": (
        "文件类型不对：请上传 CSV（text/csv）或 Excel（.xlsx）文件",
        "wrong file type: send a CSV (text/csv) or an Excel (.xlsx) file",
    ),
    # the header row
    "column.unknown": (
        "不认识的列「{column}」。可用的列：{known}",
        "unknown column “{column}”. Columns read: {known}",
    ),
    "column.personal": (
        "「{column}」列含有个人信息（电话、身份证号、住址、银行卡号等），交换平台不保存这类信息："
        "请删除这一列后再导入，整个文件未导入",
        "the column “{column}” holds personal data (phone, ID number, address, bank card…), "
        "which the exchange never keeps: delete the column and import again; nothing was imported",
    ),
    "column.missing": ("缺少必需的列「{column}」", "the required column “{column}” is missing"),
    "column.twice": ("「{column}」列出现了两次", "the column “{column}” appears twice"),
    # a row
    "row.required": ("必填，不能为空", "required: must not be empty"),
    "row.too_long": ("太长：最多 {most} 个字", "too long: at most {most} characters"),
    "row.personal": (
        "含有个人信息（{kind}），交换平台不保存这类信息",
        "holds personal data ({kind}), which the exchange never keeps",
    ),
    "row.kind": (
        "类型「{value}」不对：可填 {known}",
        "kind “{value}” is not one of: {known}",
    ),
    "row.skill": (
        "不认识的技能「{value}」：可填 {known}",
        "unknown skill “{value}”: one of {known}",
    ),
    "row.travel": (
        "出行范围「{value}」不对：可填 {known}",
        "travel range “{value}” is not one of: {known}",
    ),
    "row.number": ("应填一个整数，例如 8", "must be a whole number, e.g. 8"),
    "row.range": ("应在 {low} 到 {high} 之间", "must be between {low} and {high}"),
    "row.availability": (
        "看不懂「{value}」：请写成「周一 09:00-12:00」「周一至周五 14:00-17:00」"
        "或「2026-12-05 09:00-12:00」，多段用分号隔开",
        "cannot read “{value}”: write e.g. “Mon 09:00-12:00”, “Mon-Fri 14:00-17:00” or "
        "“2026-12-05 09:00-12:00”, several separated by semicolons",
    ),
    "row.overlap": ("可服务时间有重叠", "availability windows overlap"),
    "row.duplicate": (
        "与第 {line} 行重复（同一{what}在文件中只能出现一次）",
        "repeats line {line} (each {what} may appear once in a file)",
    ),
    "row.similar_org": (
        "与已登记的组织「{name}」读起来相同；若是同一家，请用原名称",
        "reads the same as the registered organisation “{name}”; if it is the same one, use "
        "its registered name",
    ),
    "row.invalid": ("不符合要求：{error}", "not accepted: {error}"),
    # outcomes
    "status.created": ("已导入", "imported"),
    "status.unchanged": ("已存在，未改动", "already there: unchanged"),
    "status.would_create": ("将导入", "will be imported"),
    "status.differs": (
        "已存在，未改动（文件中这一行与上次导入时不同：请在网页上修改）",
        "already there: unchanged (this row differs from when it was imported: change it on "
        "the volunteer's page)",
    ),
    "status.refused": ("未导入", "not imported"),
    "kind.mobile": ("手机号码", "a mobile phone number"),
    "kind.landline": ("固定电话号码", "a landline number"),
    "kind.resident_id": ("身份证号码", "a resident ID number"),
    "kind.bank_card": ("银行卡号", "a bank card number"),
    "kind.email": ("电子邮箱", "an e-mail address"),
    "kind.number": ("带标注的号码", "a labelled number"),
    "what.ref": ("编号", "ref"),
    "what.name": ("名称", "name"),
}
"""key → (zh-CN, English). `tests/unit/test_importing.py` checks both are filled."""


def pick(lang: str | None) -> str:
    """The language to report in: zh-CN unless English is asked for (`en`, `en-GB`…)."""
    return "en" if lang and lang.lower().startswith("en") else DEFAULT


def text(key: str, lang: str, **values: Any) -> str:
    """The reason for `key` in `lang`, with its values filled in (a missing key shows itself)."""
    zh, en = REASONS.get(key, (key, key))
    template = en if pick(lang) == "en" else zh
    return template.format(**{k: _shown(v, lang) for k, v in values.items()})


def _shown(value: Any, lang: str) -> Any:
    if isinstance(value, tuple):  # a key of its own (e.g. what.ref), translated too
        return text(value[0], lang)
    if isinstance(value, dict):  # a value given in each language (a list of labels)
        return value.get(pick(lang), next(iter(value.values()), ""))
    return value


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (line, as the spreadsheet numbers it, and column name as the
    header spells it; line 0 is the file as a whole) and why (a key of REASONS and its
    values). Never the cell's value when it could be personal data."""

    line: int
    column: str
    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def reason(self, lang: str) -> str:
        """The reason in `lang`."""
        return text(self.key, lang, **self.values)

    def as_dict(self, lang: str) -> dict[str, Any]:
        """The problem as the HTTP API and the web page show it."""
        return {
            "line": self.line,
            "column": self.column,
            "code": self.key,
            "reason": self.reason(lang),
        }


class FileRefused(Exception):
    """The file cannot be imported at all (unreadable, bad header): nothing is written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.reason("en") for p in problems))
        self.problems = problems
