"""Reading a roster file (CSV or XLSX) into rows of text cells keyed by field.

Pure: no database. What a row *means* (a known site, a valid phone, a duplicate) is
checked by ``app.roster.service``; here only the file's shape is read.

* **Format**: an XLSX workbook is a zip (it starts with ``PK``): its first sheet is
  read with openpyxl in read-only mode. Anything else is CSV.
* **Encoding**: UTF-8, with or without the byte-order mark Excel writes; a file that
  is not valid UTF-8 is read as cp1252 (Excel's "CSV" on a French Windows).
* **Separator**: comma, semicolon or tab, whichever splits the header line into the
  most known columns.
* **Header**: the first line; names are matched without case, accents, spaces or
  dashes, in English or French (``name``/``nom``, ``phone``/``téléphone``...).
"""

from __future__ import annotations

import csv
import io
import unicodedata
import zipfile
from dataclasses import dataclass, field

from app.i18n import N_, Message
from app.text_files import BadValue, decode_upload

MAX_ROWS = 5000
DELIMITERS = (",", ";", "\t")

# Each field and the header names that mean it (compared in their folded form).
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("name", "nom", "fullname", "nomcomplet", "displayname"),
    "email": ("email", "mail", "courriel", "adressemail"),
    "phone": ("phone", "telephone", "tel", "mobile", "portable"),
    "site": ("site", "centre", "center"),
    "employer": ("employer", "company", "entreprise", "employeur", "societe"),
    "languages": ("languages", "langues", "language", "langue"),
    "skills": ("skills", "competences", "skill"),
    "trained": ("trained", "forme", "formee", "formation"),
    "notes": ("notes", "note", "remarques", "commentaire"),
    "login": ("login", "identifiant"),
}


@dataclass(frozen=True)
class Layout:
    """What a file holds: its fields with their header names, and the columns of which
    the header needs at least one (a roster needs ``name``)."""

    fields: dict[str, tuple[str, ...]]
    needs: tuple[str, ...]
    # The message (id) for a file with too many rows ({most}: the most a file holds).
    too_many: str = N_("more than {most} volunteers in one file")

    def by_folded(self) -> dict[str, str]:
        return {name: key for key, names in self.fields.items() for name in names}


ROSTER = Layout(FIELD_NAMES, ("name",))
# Sign-ups to shifts (app/roster/shifts.py): who (login or e-mail), and which shift
# (its id, or its site and start in the site's time).
SIGNUPS = Layout(
    {
        "login": FIELD_NAMES["login"] + ("username", "utilisateur"),
        "email": FIELD_NAMES["email"],
        "shift": ("shift", "shiftid", "creneau", "idcreneau"),
        "site": FIELD_NAMES["site"],
        "start": ("start", "starts", "startsat", "debut", "heuredebut", "from"),
    },
    ("login", "email"),
    N_("more than {most} sign-ups in one file"),
)


class FileUnreadable(BadValue):
    """The file as a whole cannot be read (not CSV nor XLSX, no name column...)."""


@dataclass
class RosterRow:
    line: int  # the line (CSV) or row (XLSX) number, as the user's editor shows it
    cells: dict[str, str] = field(default_factory=dict)


def fold(text: str) -> str:
    """A header name compared without case, accents, spaces, dashes or dots."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _columns(header: list[str], layout: Layout) -> dict[int, str]:
    by_folded = layout.by_folded()
    columns: dict[int, str] = {}
    for index, name in enumerate(header):
        key = by_folded.get(fold(name or ""))
        if key is not None and key not in columns.values():
            columns[index] = key
    return columns


def _rows(table: list[tuple[int, list[str]]], layout: Layout) -> list[RosterRow]:
    if not table:
        raise FileUnreadable(Message("the file is empty"))
    header_line, header = table[0]
    columns = _columns(header, layout)
    if not set(layout.needs) & set(columns.values()):
        names = layout.needs
        if len(names) == 1:
            reason = Message(
                "line {line}: no '{name}' column in the header", line=header_line, name=names[0]
            )
        else:
            reason = Message(
                "line {line}: no '{first}' or '{second}' column in the header",
                line=header_line,
                first="', '".join(names[:-1]),
                second=names[-1],
            )
        raise FileUnreadable(reason)
    rows = []
    for line, values in table[1:]:
        if not any((v or "").strip() for v in values):
            continue  # blank lines (Excel leaves some at the end)
        cells = {
            key: (values[index] if index < len(values) else "").strip()
            for index, key in columns.items()
        }
        rows.append(RosterRow(line, cells))
        if len(rows) > MAX_ROWS:
            raise FileUnreadable(Message(layout.too_many, most=MAX_ROWS))
    return rows


def _delimiter(first_line: str, layout: Layout) -> str:
    def known(delimiter: str) -> int:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        return len(_columns(header, layout))

    return max(DELIMITERS, key=known)


def read_csv(data: bytes, layout: Layout = ROSTER) -> list[RosterRow]:
    try:
        text = decode_upload(data)
    except UnicodeDecodeError as exc:
        raise FileUnreadable(
            Message("the file's byte-order mark says UTF-8, but it is not")
        ) from exc
    if "\x00" in text:
        raise FileUnreadable(Message("not a CSV file (binary content)"))
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line, layout))
    try:
        table = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise FileUnreadable(
            Message("line {line}: {error}", line=reader.line_num, error=str(exc))
        ) from exc
    return _rows(table, layout)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed as a number: 612345678.0
    return str(value)


def read_xlsx(data: bytes, layout: Layout = ROSTER) -> list[RosterRow]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileUnreadable(Message("not a readable XLSX workbook")) from exc
    try:
        sheet = workbook.worksheets[0]
        table = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            table.append((number, [_cell_text(v) for v in values]))
            if number > MAX_ROWS + 1:
                raise FileUnreadable(Message(layout.too_many, most=MAX_ROWS))
    finally:
        workbook.close()
    return _rows(table, layout)


def read_roster(data: bytes, layout: Layout = ROSTER) -> list[RosterRow]:
    """The file's rows (volunteers, or sign-ups with ``SIGNUPS``), whatever its format."""
    if data.startswith(b"PK"):
        return read_xlsx(data, layout)
    return read_csv(data, layout)
