"""A spreadsheet's bytes → a table of text cells, each row with the line number a person sees.

CSV is read with the csv module after decoding: strict UTF-8 first (with or without the BOM
Excel writes), else GB18030, the encoding Excel and WPS on a Chinese Windows save "CSV" in.
UTF-8 first because a GB18030 file is almost never valid UTF-8, while every UTF-8 file would
decode as GB18030 into nonsense. An .xlsx file is read with openpyxl (read-only, values only,
the first sheet); its line numbers are Excel's row numbers. The format is told by the bytes
(an .xlsx file is a zip archive), not by a file name or a Content-Type a client may get wrong.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from services.importing.reasons import FileRefused, Problem

MOST_ROWS = 20_000
"""Rows one file may hold (a district's volunteers fit; more is split into several files)."""

ZIP = b"PK\x03\x04"
OLE = b"\xd0\xcf\x11\xe0"  # the old binary .xls


@dataclass(frozen=True)
class Table:
    """The header row and the data rows (blank rows left out), each with its line number."""

    header_line: int
    headers: list[str]
    rows: list[tuple[int, list[str]]]
    encoding: str
    """`utf-8`, `utf-8-sig`, `gb18030` or `xlsx`: reported, so a wrong guess can be seen."""


def read_table(data: bytes) -> Table:
    """The table in `data` (CSV or .xlsx); raises FileRefused when it cannot be read."""
    if data.startswith(OLE):
        raise FileRefused([Problem(0, "", "file.xls")])
    if data.startswith(ZIP):
        lines = _xlsx_rows(data)
        encoding = "xlsx"
    else:
        text, encoding = decode(data)
        lines = _csv_rows(text)
    rows = [(n, cells) for n, cells in lines if any(c.strip() for c in cells)]
    if not rows:
        raise FileRefused([Problem(0, "", "file.empty")])
    (header_line, headers), data_rows = rows[0], rows[1:]
    if len(data_rows) > MOST_ROWS:
        raise FileRefused([Problem(0, "", "file.too_many_rows", {"most": MOST_ROWS})])
    return Table(header_line, [h.strip() for h in headers], data_rows, encoding)


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 with its BOM, UTF-8, else GB18030; all strict."""
    candidates = ["utf-8-sig"] if data.startswith(b"\xef\xbb\xbf") else ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise FileRefused([Problem(0, "", "file.encoding")])


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """Rows with the line each starts on (a quoted cell may span lines)."""
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    line = 1
    try:
        for cells in reader:
            rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FileRefused([Problem(reader.line_num, "", "file.csv", {"error": str(exc)})]) from None
    return rows


def _xlsx_rows(data: bytes) -> list[tuple[int, list[str]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileRefused([Problem(0, "", "file.xlsx", {"error": type(exc).__name__})]) from None
    try:
        sheet = book.worksheets[0]
        return [
            (n, [cell_text(v) for v in values])
            for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    except Exception as exc:  # a damaged part inside the archive: refused, never a 500
        raise FileRefused([Problem(0, "", "file.xlsx", {"error": type(exc).__name__})]) from None
    finally:
        book.close()


def cell_text(value: Any) -> str:
    """An Excel cell's value as the text a person sees: 8 not 8.0, a date as 2026-12-05."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if value.time() != time(0) else str(value.date())
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)
