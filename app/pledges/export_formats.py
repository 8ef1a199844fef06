"""The export file formats: CSV and XLSX, encoded a chunk of rows at a time.

What goes in the rows (and how they are read) is ``app/pledges/exports.py``; the
cells come formatted by the database (``app/pledges/export_sql.py``); this module
turns a chunk of them into bytes, holding no more than that chunk.

* **CSV**: RFC 4180 (comma, ``"`` quoting where needed, CRLF line ends), UTF-8,
  optionally with a byte-order mark so spreadsheet programs read the accents; or
  the ``excel-fr`` dialect (``DIALECTS``): ``;`` between cells and a decimal comma
  in amounts, with a byte-order mark, which a French Excel opens as it is.
* **XLSX**: a minimal Office Open XML workbook written here as a zip stream (inline
  strings, no shared-string table), so memory does not grow with the row count.

Both formats carry the same columns: money as decimal text in major units, the
same amount in integer minor units, and the currency; times in UTC, ISO 8601.

**Formula neutralisation.** A formula starts with ``=``, ``+``, ``-``, ``@``, a
tab, a carriage return, ``|`` or ``%``, or with the full-width ``U+FF1D U+FF0B U+FF0D U+FF20`` that
some spreadsheets read as their ASCII forms (``FORMULA_STARTS``). Such a character
gets an apostrophe before it (``'=1+1``) when it starts a text cell, and also when
it follows a ``;``, a ``,``, a tab or a line break inside one (``Dupont;'=1+1``):
a spreadsheet that splits lines on another separator than ours (a French Excel
splits on ``;``) or loses the quoting would start a cell there. The spreadsheet
then shows text instead of running a formula (CSV injection). Numbers we write
ourselves (ids, amounts) are not text cells and are left alone.

``neutralise`` is the rule for one cell. In an export it is applied in two steps,
each where it is cheap (a million pledges are 20 million text cells):
``export_sql.text_cell`` prefixes a dangerous first character inside the query,
and ``neutralise_after_separators`` inserts the apostrophes after separators into
the encoded CSV bytes of a whole chunk at once (one regular-expression pass in C),
or into each XLSX text cell (written one by one anyway). On the bytes, the pass
only ever meets a separator followed by a formula character inside a text cell:
a cell starts with a digit (ids, amounts, times, never negative), a letter
(booleans), a quote or an already neutralised text; at worst it would neutralise
more, never less.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import escape

# The full-width forms are written by code point: they look like their ASCII forms.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "|", "%", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)
# What a spreadsheet may start a new cell after, inside one of our cells.
CELL_SEPARATORS = (";", ",", "\t", "\r", "\n")
_AFTER_SEPARATOR = re.compile(
    "([" + re.escape("".join(CELL_SEPARATORS)) + "])"
    "(?=[" + re.escape("".join(FORMULA_STARTS)) + "])"
)
_AFTER_SEPARATOR_BYTES = re.compile(
    b"([" + re.escape("".join(CELL_SEPARATORS).encode()) + b"])"
    b"(?=" + b"|".join(re.escape(c.encode()) for c in FORMULA_STARTS) + b")"
)
BOM = "\ufeff"

# A formatted cell: text (already neutralised), an integer, or nothing. Amounts
# are decimal text ("12.34"); the XLSX writer stores them as numbers because their
# column says so (``Column.kind``).
Cell = str | int | None


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not evaluate (see the module docstring)."""
    if not text:
        return text
    inner = neutralise_after_separators(text)
    return "'" + inner if text[0] in _FORMULA_FIRST else inner


def neutralise_after_separators(text: str) -> str:
    """An apostrophe between each separator and the formula character after it."""
    return _AFTER_SEPARATOR.sub(r"\1'", text)


def _byte_classes() -> tuple[bytes, tuple[bytes, ...]]:
    """A translation table putting each byte in a class (S separator, T formula start,
    B both, F first byte of a multi-byte formula start, . anything else), and the
    pairs of classes where a separator is followed by what may start a formula."""
    table = bytearray(b"." * 256)
    for char in FORMULA_STARTS:
        encoded = char.encode()
        table[encoded[0]] = ord("T") if len(encoded) == 1 else ord("F")
    for char in CELL_SEPARATORS:
        code = ord(char)
        table[code] = ord("B") if table[code] == ord("T") else ord("S")
    pairs = tuple(bytes([s, t]) for s in b"SB" for t in b"TBF")
    return bytes(table), pairs


_CLASSES, _DANGEROUS_PAIRS = _byte_classes()


def neutralise_csv_after_separators(data: bytes) -> bytes:
    """``neutralise_after_separators`` on encoded CSV records (UTF-8), all at once.

    The regular expression walks 5 MB in about 250 ms; classing the bytes with one
    ``translate`` and looking for a dangerous pair of classes takes about 12 ms and
    finds nothing in almost every chunk, so the expression runs only when it may
    have something to do."""
    classes = data.translate(_CLASSES)
    if not any(pair in classes for pair in _DANGEROUS_PAIRS):
        return data
    return _AFTER_SEPARATOR_BYTES.sub(rb"\1'", data)


def neutralise_csv_records(data: bytes, delimiter: str) -> bytes:
    """``neutralise_csv_after_separators`` on the CSV records of an export chunk, whose
    cells start safe (module docstring): a formula can only follow a separator inside a
    cell. A cell holding the delimiter, a quote or a line end is quoted; so where the
    chunk has no quote at all, no cell holds one of those, and where it holds none of
    the other separators either (``;`` and tab beside a comma), there is nothing to
    do: a few scans in C instead of the pass (about 15 ms per MB, three seconds per
    million pledges)."""
    inner = (s.encode() for s in CELL_SEPARATORS if s not in (delimiter, "\n"))
    if b'"' not in data and not any(s in data for s in inner):
        return data
    return neutralise_csv_after_separators(data)


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is laid out: the separator, the decimal mark of amounts, and
    whether it starts with a byte-order mark whatever was asked."""

    name: str
    delimiter: str
    decimal_mark: str
    bom: bool


DIALECTS = {
    # RFC 4180: what programs and most spreadsheets read.
    "rfc4180": CsvDialect("rfc4180", ",", ".", bom=False),
    # What a French Excel opens by double-click: its list separator is ";" and its
    # decimal mark ",", and it reads UTF-8 only after a BOM. Amounts stay exact and
    # unambiguous: "1234,50", never a thousands separator.
    "excel-fr": CsvDialect("excel-fr", ";", ",", bom=True),
}


# Decimal digits of each ISO 4217 currency that does not have 2; the rest have 2.
CURRENCY_DIGITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


# --- columns ------------------------------------------------------------------------------

# ``code``: text the app itself writes, from a closed set of values none of which
# starts a formula (a status, a currency...): written as it is, where ``text`` (what
# a donor or volunteer typed) is neutralised.
Kind = Literal["int", "text", "code", "bool", "time", "money"]


@dataclass(frozen=True)
class Column:
    """One export column: its header and its kind (how its cells are formatted, see
    ``app/pledges/export_sql.py``; XLSX writes ``int`` and ``money`` as numbers, the
    rest as text)."""

    header: str
    kind: Kind


# --- CSV ------------------------------------------------------------------------------------


class CsvEncoder:
    """Rows to CSV bytes (RFC 4180, or another ``CsvDialect``), a chunk at a time: the
    small tables (totals, hours) and the rare pledges ``csv_from_lines`` hands back."""

    def __init__(self, *, bom: bool = False, dialect: CsvDialect = DIALECTS["rfc4180"]) -> None:
        self._buffer = io.StringIO()
        # QUOTE_MINIMAL quotes a field holding the separator, a quote or a line end,
        # and doubles the quotes inside; CRLF ends each record (RFC 4180 §2). None is
        # written as an empty field.
        self._writer = csv.writer(self._buffer, delimiter=dialect.delimiter, lineterminator="\r\n")
        self._bom = bom or dialect.bom

    def header(self, columns: Sequence[Column]) -> bytes:
        text = (BOM if self._bom else "") + self._encode([[neutralise(c.header) for c in columns]])
        return text.encode("utf-8")

    def rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """Rows of ``(pledge_id, cell, cell, ...)``, their first characters neutralised
        already (as the database formats them); the separators inside are seen to here,
        cell by cell (a pass over the encoded bytes would take the CR of a record's CRLF
        after an empty last cell's separator for a formula)."""
        return self._encode([_after_separators(cell) for cell in row[1:]] for row in rows).encode(
            "utf-8"
        )

    def end(self) -> bytes:
        return b""

    def _encode(self, rows: Iterable[Sequence[Cell]]) -> str:
        self._writer.writerows(rows)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def _after_separators(cell: Cell) -> Cell:
    return neutralise_after_separators(cell) if isinstance(cell, str) else cell


# The separator between cells in the lines the database writes (``csv_from_lines``),
# and between the lines of a chunk when it writes them as one block (``csv_from_block``).
LINE_SEPARATOR = "\x1f"
RECORD_SEPARATOR = "\x1e"
_CELL_MARK = LINE_SEPARATOR.encode()
_RECORD_MARK = RECORD_SEPARATOR.encode()


def csv_from_block(
    block: bytes, lines: int, columns: int, dialect: CsvDialect
) -> list[bytes | int] | None:
    """``csv_from_lines`` for a chunk the database wrote as one block of UTF-8 bytes:
    its ``lines`` lines joined by ``RECORD_SEPARATOR`` (``export_sql.joined_lines``).

    A block none of whose cells needs quoting nor holds one of the two separators
    (the usual case) becomes CSV in a few passes over the bytes, without a Python
    string per line: the same bytes as ``csv_from_lines`` gives for its lines. (On
    bytes: the separators, quote and line ends are ASCII, never part of another
    character's UTF-8 encoding.) Otherwise the block is split into its lines for
    ``csv_from_lines``; and when it does not split into ``lines`` of them (a cell
    holding ``RECORD_SEPARATOR``), None: the chunk is to be read again a line a
    pledge."""
    if not lines:
        return []
    delimiter = dialect.delimiter.encode()
    # The scans that find nothing first (each a pass in C); the counts last.
    if (
        not any(char in block for char in (delimiter, b'"', b"\r", b"\n"))
        and block.count(_RECORD_MARK) == lines - 1
        and block.count(_CELL_MARK) == (columns - 1) * lines
    ):
        # Both separators in one pass (a replace of the cells' took four times as long),
        # LF record ends first, then CRLF (see ``CsvEncoder.rows``).
        table = bytes.maketrans(_CELL_MARK + _RECORD_MARK, delimiter + b"\n")
        records = block.translate(table) + b"\n"
        return [neutralise_csv_records(records, dialect.delimiter).replace(b"\n", b"\r\n")]
    split = block.split(_RECORD_MARK)
    if len(split) != lines:
        return None
    return csv_from_lines([line.decode("utf-8") for line in split], columns, dialect)


def csv_from_lines(lines: Sequence[str], columns: int, dialect: CsvDialect) -> list[bytes | int]:
    """CSV records from lines of cells the database joined with ``LINE_SEPARATOR``
    (``export_sql.cells_line``: each cell formatted, text cells' first character
    neutralised, nothing quoted; the pledge id first).

    A line whose cells hold no separator, quote or line end, and no
    ``LINE_SEPARATOR`` of their own (``columns - 1`` of them in all), needs no
    quoting: a whole chunk of those is turned into CSV by a few passes in C (the
    separators replaced, the apostrophes after separators put in, LF made CRLF).
    Any other line is written by the ``csv`` module, cell by cell. A line with a
    ``LINE_SEPARATOR`` inside a cell cannot be split here: its pledge id comes back
    in its place, for that row to be read cell by cell instead.

    Returns the pieces in order: CSV bytes, or the id of a pledge to read again."""
    joined = "\n".join(lines)
    if _plain_chunk(joined, len(lines), columns, dialect):
        return [_plain_records(joined, dialect)]
    pieces: list[bytes | int] = []
    special_chars = _special_chars(dialect)
    run: list[str] = []
    encoder = CsvEncoder(dialect=dialect)
    for line in lines:
        if special_chars.search(line) is None and line.count(LINE_SEPARATOR) == columns - 1:
            run.append(line)
            continue
        if run:
            pieces.append(_plain_records("\n".join(run), dialect))
            run = []
        cells = line.split(LINE_SEPARATOR)
        if len(cells) == columns:
            pieces.append(encoder.rows([[None, *cells]]))  # rows() drops the first
        else:
            pieces.append(int(cells[0]))
    if run:
        pieces.append(_plain_records("\n".join(run), dialect))
    return pieces


_SPECIAL_CHARS: dict[str, re.Pattern[str]] = {}


def _special_chars(dialect: CsvDialect, line_ends: str = "\r\n") -> re.Pattern[str]:
    """What makes a cell need quoting in ``dialect``: its separator, a quote, a line end."""
    key = dialect.delimiter + line_ends
    pattern = _SPECIAL_CHARS.get(key)
    if pattern is None:
        pattern = re.compile("[" + re.escape(dialect.delimiter + '"' + line_ends) + "]")
        _SPECIAL_CHARS[key] = pattern
    return pattern


def _plain_chunk(joined: str, lines: int, columns: int, dialect: CsvDialect) -> bool:
    """No cell of these lines needs quoting nor holds a ``LINE_SEPARATOR``: the LFs
    are only those joining the lines, the separators only the cells'. (``in`` for each
    character: a scan in C each, a third of the time of one regular expression.)"""
    return (
        joined.count("\n") == lines - 1
        and joined.count(LINE_SEPARATOR) == (columns - 1) * lines
        and not any(char in joined for char in (dialect.delimiter, '"', "\r"))
    )


def _plain_records(joined: str, dialect: CsvDialect) -> bytes:
    """Lines needing no quoting as CSV records: the separators in, formulas after
    separators neutralised (on LF record ends: see ``CsvEncoder.rows``), then CRLF."""
    data = (joined.replace(LINE_SEPARATOR, dialect.delimiter) + "\n").encode("utf-8")
    return neutralise_csv_records(data, dialect.delimiter).replace(b"\n", b"\r\n")


# --- XLSX -----------------------------------------------------------------------------------

# Characters XML 1.0 does not allow at all (a spreadsheet would refuse the file).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/>'
    "</Relationships>"
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_START = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
    'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
    "<sheetData>"
)
_SHEET_END = "</sheetData></worksheet>"


# Excel refuses a workbook whose sheet name holds one of these, is empty, is longer
# than 31 characters, or starts or ends with an apostrophe.
_SHEET_NAME_FORBIDDEN = re.compile(r"[\\/?*\[\]:]")


def sheet_name_for(title: str) -> str:
    name = _SHEET_NAME_FORBIDDEN.sub("_", _XML_ILLEGAL.sub("", title))[:31].strip("' ")
    return name or "Pledges"


def _workbook(sheet_name: str) -> str:
    name = escape(sheet_name_for(sheet_name), {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


# Text that can go into the XML as it is: no markup characters, nothing XML cannot
# hold, no CR, and no white space at either end (which would need xml:space).
_XML_PLAIN = re.compile(r"[^&<>\x00-\x1f\ufffe\uffff]*")


def _xlsx_cell(value: Cell, style: str = "", number: bool = False) -> str:
    if value is None:
        return "<c/>"
    if number or isinstance(value, int):
        return f"<c{style}><v>{value}</v></c>"
    value = neutralise_after_separators(value)
    if _XML_PLAIN.fullmatch(value) and value[:1] != " " and value[-1:] != " ":
        return f'<c t="inlineStr"{style}><is><t>{value}</t></is></c>'
    # A CR would be read back as a plain line feed (XML end-of-line handling): keep it.
    text = escape(_XML_ILLEGAL.sub("", value), {"\r": "&#13;"})
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c t="inlineStr"{style}><is><t{space}>{text}</t></is></c>'


class _Drain(io.RawIOBase):
    """A write-only, unseekable byte sink the zip writer fills and we empty: the zip is
    then written with data descriptors, chunk by chunk, never held whole."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class XlsxEncoder:
    """Rows to an XLSX workbook (one sheet), as a stream of bytes."""

    def __init__(self, sheet_name: str = "Pledges") -> None:
        self._drain = _Drain()
        self._zip = zipfile.ZipFile(self._drain, "w", compression=zipfile.ZIP_DEFLATED)
        for name, text in (
            ("[Content_Types].xml", _CONTENT_TYPES),
            ("_rels/.rels", _ROOT_RELS),
            ("xl/workbook.xml", _workbook(sheet_name)),
            ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
            ("xl/styles.xml", _STYLES),
        ):
            self._zip.writestr(name, text)
        # zip64 from the start: the sheet's size is not known in advance.
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self._sheet.write(_SHEET_START.encode())
        self._numbers: list[bool] = []

    def header(self, columns: Sequence[Column]) -> bytes:
        # Ids, minor units and amounts are numbers in the sheet (exact decimal text).
        self._numbers = [c.kind in ("int", "money") for c in columns]
        row = "".join(_xlsx_cell(neutralise(c.header), ' s="1"') for c in columns)
        self._sheet.write(f"<row>{row}</row>".encode())
        return self._drain.take()

    def rows(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """Rows of ``(pledge_id, cell, cell, ...)``, as the database formatted them."""
        numbers = self._numbers
        text = "".join(
            f"<row>{''.join(map(_xlsx_cell, row[1:], itertools.repeat(''), numbers))}</row>"
            for row in rows
        )
        self._sheet.write(text.encode("utf-8"))
        return self._drain.take()

    def end(self) -> bytes:
        self._sheet.write(_SHEET_END.encode())
        self._sheet.close()
        self._zip.close()
        return self._drain.take()


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def crlf_records(data: bytes) -> bytes:
    """CSV with LF record ends (PostgreSQL's ``COPY``) made CRLF, as RFC 4180 wants;
    a line break inside a quoted field is data and stays as it is.

    A piece between two LFs ends a record unless a quoted field is still open
    there, i.e. unless an odd number of ``"`` has been seen since the record began
    (quotes inside a field are doubled, so they never change the parity)."""
    if b'"' not in data:
        return data.replace(b"\n", b"\r\n")
    out: list[bytes] = []
    open_quote = False
    pieces = data.split(b"\n")
    for piece in pieces[:-1]:
        if piece.count(b'"') % 2:
            open_quote = not open_quote
        out.append(piece)
        out.append(b"\n" if open_quote else b"\r\n")
    out.append(pieces[-1])
    return b"".join(out)
