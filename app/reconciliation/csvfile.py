"""Reading a provider's or bank's CSV export with its source's column mapping.

Pure: no database. The whole file is read and checked before anything is written,
so a bad file is refused with every problem found (line, column, reason; never
the value) and nothing of it is imported.

* **Encoding**: the source's (``utf-8`` or ``cp1252``); a file starting with a
  UTF-8 byte-order mark is read as UTF-8 whatever the setting (Excel writes one).
* **Header**: the first line, within the first :data:`HEADER_SEARCH_LINES`, that
  holds every mapped column name (case and surrounding spaces ignored): French
  bank exports start with a few lines about the account, which are skipped.
* **Card data**: every cell goes through the card guard (``app/cardguard.py``).
  Bank labels carry long identifiers that may pass the Luhn check by chance, so a
  card-like run is *masked* (``[card number removed]``) rather than the whole file
  refused; masked cards (``4974 XXXX XXXX 1234``) are no card numbers and stay.
  Nothing derived from an unmasked cell is kept: the line's digest is taken over
  the masked cells.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from app.cardguard import card_spans, has_security_code_near_card_words
from app.i18n import Message
from app.reconciliation.amounts import AmountError, parse_amount
from app.text_files import UTF8_BOM, LineProblem

HEADER_SEARCH_LINES = 20
MAX_LINES = 100_000
MAX_PROBLEMS = 100
CARD_MASK = "[card number removed]"
CARD_DATA_MASK = "[card data removed]"
# Longest stored texts; longer cells are refused (a file not exported the expected way).
MAX_LABEL, MAX_PAYER, MAX_TRANSACTION_ID = 500, 200, 128

# The mapped fields: "date" and one of "amount"/"credit" are required.
FIELDS = ("date", "amount", "credit", "reference", "payer", "transaction_id", "currency")
DATE_FORMATS = (
    "iso",
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d/%m/%y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
)
ENCODINGS = ("utf-8", "cp1252")
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class Mapping_:
    """A source's reading rules (``PaymentSource`` without the database)."""

    name: str
    kind: str
    delimiter: str
    decimal_separator: str
    encoding: str
    date_format: str
    currency: str
    columns: Mapping[str, str]


@dataclass
class Line:
    """One data line, read and checked."""

    line_no: int
    key: str
    transaction_id: str | None
    booked_at: dt.datetime
    amount_minor: int
    currency: str
    label: str
    payer: str
    masked: bool


@dataclass
class ParsedFile:
    lines: list[Line] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)
    more_problems: int = 0

    def problem(self, line: int | None, column: str | None, reason: Message) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(LineProblem(line, column, reason))
        else:
            self.more_problems += 1


def _decode(data: bytes, encoding: str, parsed: ParsedFile) -> str | None:
    if data.startswith(UTF8_BOM):
        encoding, data = "utf-8", data[len(UTF8_BOM) :]
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        parsed.problem(line, None, Message("not a text file"))
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        other = "cp1252" if encoding == "utf-8" else "utf-8"
        reason = Message(
            "not {encoding} text (is the file in {other}? set the source's encoding)",
            encoding=encoding,
            other=other,
        )
        parsed.problem(line, None, reason)
        return None


def _guarded(text: str) -> tuple[str, bool]:
    """``text`` with card numbers (and card data next to its wording) masked."""
    spans = card_spans(text)
    masked = bool(spans)
    for start, end in reversed(spans):
        text = text[:start] + CARD_MASK + text[end:]
    if has_security_code_near_card_words(text):
        return CARD_DATA_MASK, True
    return text, masked


def _date(text: str, date_format: str) -> dt.datetime:
    """A UTC time: an ISO time keeps its offset (none: UTC); a date is its midnight UTC."""
    value = text.strip()
    if date_format == "iso":
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        moment = dt.datetime.strptime(value, date_format)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _find_header(
    rows: list[tuple[int, list[str]]], wanted: Mapping[str, str]
) -> tuple[int, dict[str, int]] | None:
    names = {field: header.strip().casefold() for field, header in wanted.items()}
    for index, (_, cells) in enumerate(rows[:HEADER_SEARCH_LINES]):
        folded = [cell.strip().casefold() for cell in cells]
        if all(name in folded for name in names.values()):
            return index, {field: folded.index(name) for field, name in names.items()}
    return None


def _rows(text: str, delimiter: str, parsed: ParsedFile) -> list[tuple[int, list[str]]] | None:
    """(first line number, cells) of each record; None if the CSV itself is broken."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            rows.append((start, cells))
            start = reader.line_num + 1
            if len(rows) > MAX_LINES + HEADER_SEARCH_LINES:
                reason = Message("more than {most} lines: split the file", most=MAX_LINES)
                parsed.problem(None, None, reason)
                return None
    except csv.Error as exc:
        reason = Message("not readable as CSV ({error})", error=str(exc))
        parsed.problem(reader.line_num, None, reason)
        return None
    return rows


def _width(cells: list[str]) -> int:
    """The number of cells up to the last one that is not empty: a separator at the end
    of the line, which some exports write and others do not, adds no column."""
    width = len(cells)
    while width and not cells[width - 1].strip():
        width -= 1
    return width


def parse(
    data: bytes, mapping: Mapping_, progress: Callable[[int, int], None] | None = None
) -> ParsedFile:
    """Every line of the file, or every problem found (then ``lines`` is empty)."""
    parsed = ParsedFile()
    text = _decode(data, mapping.encoding, parsed)
    if text is None:
        return parsed
    rows = _rows(text, mapping.delimiter, parsed)
    if rows is None:
        return parsed
    header = _find_header(rows, mapping.columns)
    if header is None:
        wanted = ", ".join(f'"{name}"' for name in mapping.columns.values())
        reason = Message("no header line with the columns {wanted}", wanted=wanted)
        parsed.problem(None, None, reason)
        return parsed
    header_index, where = header
    width = _width(rows[header_index][1])
    seen_keys: dict[str, int] = {}
    body = rows[header_index + 1 :]
    for done, (line_no, cells) in enumerate(body, 1):
        if progress is not None:
            progress(done, len(body))
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (and the last line's end) carry nothing
        if len(cells) < width or _width(cells) > width:
            reason = Message(
                "{count} cells where the header has {width}", count=len(cells), width=width
            )
            parsed.problem(line_no, None, reason)
            continue
        cells = cells[:width]  # empty cells after the last column (a trailing separator)
        line = _line(line_no, cells, where, mapping, parsed, seen_keys)
        if line is not None:
            parsed.lines.append(line)
    if parsed.problems:
        parsed.lines = []
    return parsed


def _line(
    line_no: int,
    cells: list[str],
    where: Mapping[str, int],
    mapping: Mapping_,
    parsed: ParsedFile,
    seen_keys: dict[str, int],
) -> Line | None:
    guarded = [_guarded(cell.strip()) for cell in cells]
    masked = any(flag for _, flag in guarded)
    values = {field: guarded[index][0] for field, index in where.items()}
    header = mapping.columns
    problems_before = len(parsed.problems) + parsed.more_problems

    currency = values.get("currency") or mapping.currency
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        parsed.problem(line_no, header.get("currency"), Message("not a currency code"))
        currency = mapping.currency
    currency = currency.upper()
    amount = 0
    amount_field = "amount" if "amount" in where else "credit"
    amount_text = values[amount_field]
    if amount_text or amount_field == "amount":
        try:
            amount = parse_amount(
                amount_text, decimal_separator=mapping.decimal_separator, currency=currency
            )
        except AmountError as exc:
            reason = Message("not an amount: {reason}", reason=exc.reason)
            parsed.problem(line_no, header[amount_field], reason)
    try:
        booked_at = _date(values["date"], mapping.date_format)
    except ValueError:
        reason = Message("not a date in the form {form}", form=mapping.date_format)
        parsed.problem(line_no, header["date"], reason)
        booked_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    label, payer = values.get("reference", ""), values.get("payer", "")
    transaction_id: str | None = values.get("transaction_id") or None
    for field_name, value, limit in (
        ("reference", label, MAX_LABEL),
        ("payer", payer, MAX_PAYER),
        ("transaction_id", transaction_id or "", MAX_TRANSACTION_ID),
    ):
        if len(value) > limit:
            reason = Message("longer than {limit} characters", limit=limit)
            parsed.problem(line_no, header[field_name], reason)
    if transaction_id is not None and CARD_MASK in transaction_id:
        if mapping.kind == "provider":
            reason = Message("the transaction id reads as a card number")
            parsed.problem(line_no, header.get("transaction_id"), reason)
        transaction_id = None  # not kept: a bank's line goes by its digest
    elif mapping.kind == "provider" and transaction_id is None and amount > 0:
        parsed.problem(line_no, header.get("transaction_id"), Message("no transaction id"))
    if len(parsed.problems) + parsed.more_problems > problems_before:
        return None

    if transaction_id is not None:
        key = f"id:{transaction_id}"
        if key in seen_keys:
            parsed.problem(
                line_no,
                header.get("transaction_id"),
                Message("the same transaction id as line {line}", line=seen_keys[key]),
            )
            return None
        seen_keys[key] = line_no
    else:
        # Identical lines in one file are distinct payments: their rank tells them
        # apart, and gives them the same keys when the file comes again.
        content = "\x1f".join(text for text, _ in guarded)
        digest = hashlib.sha256(content.encode()).hexdigest()
        rank = seen_keys.get(digest, 0) + 1
        seen_keys[digest] = rank
        ranked = f"{content}\x1e{rank}".encode()
        key = "sha256:" + hashlib.sha256(ranked).hexdigest()
    return Line(
        line_no=line_no,
        key=key,
        transaction_id=transaction_id,
        booked_at=booked_at,
        amount_minor=amount,
        currency=currency,
        label=label,
        payer=payer,
        masked=masked,
    )
