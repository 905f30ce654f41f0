"""The sign-ins file: each new volunteer's (or organisation's) token, handed back once.

Only the tokens' hashes are stored, so this file is the one copy: the organisation prints it
or sends each person their line, then deletes it. CSV in UTF-8 with a BOM, so Excel on a
Chinese Windows opens it as UTF-8 rather than guessing GB18030; written with mode 0600 and
never over an existing file (an earlier file's tokens would be lost with it). A lost sign-in
is re-issued (`POST /v1/volunteers/{id}/token`), which stops the old one.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from services.importing.store import Report

HEADERS = {
    "volunteers": ("编号/ref", "称呼/pseudonym", "志愿者ID/volunteer_id", "登录令牌/token"),
    "orgs": ("类型/kind", "名称/name", "组织ID/org_id", "登录令牌/token"),
}


def sign_ins_csv(report: Report) -> bytes:
    """The report's sign-ins as CSV bytes (UTF-8 with BOM)."""
    return csv_of(report.what, [(s.ref, s.name, str(s.id), s.token) for s in report.sign_ins])


def csv_of(what: str, rows: Iterable[tuple[str, str, str, str]]) -> bytes:
    """Sign-ins (ref or kind, name, id, token) as the file: UTF-8 with BOM, CRLF lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS[what])
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def check_writable(path: Path) -> None:
    """Refuse (FileExistsError) before importing when the sign-ins file already exists."""
    if path.exists():
        raise FileExistsError(f"{path} exists: the sign-ins it holds would be lost")


def write_sign_ins(path: Path, data: bytes) -> None:
    """Write the file readable by its owner only (0600), never over an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
