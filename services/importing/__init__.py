"""Bulk import of organisations, and of volunteers with their pledges (issue #16).

A street office's spreadsheet (CSV in UTF-8 or GB18030, or an Excel .xlsx file) becomes the
same request bodies the HTTP API validates, row by row, so a row is valid exactly when the API
would accept it. A dry run reports every bad row (line, column, reason in zh-CN or English);
an import writes the good rows in batches through the same outbox as the API, so every
volunteer's `RegisterVolunteer` and `MakePledge` are events exactly as if posted one by one,
and a second run of the same file changes nothing. docs/import.md.

- `reading`: bytes → a table of text cells with their line numbers (csv module, openpyxl);
- `columns`: header names (Chinese and English) → fields; personal-data columns refused;
- `rows`: a row → the API's bodies, or problems;
- `reasons`: the problems' reasons in each language;
- `store`: the writes (PostgreSQL, the outbox), idempotent;
- `signins`: the sign-ins file handed back once.
"""
