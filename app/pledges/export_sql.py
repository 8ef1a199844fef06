"""The export's cells, formatted by the database.

A million pledges times thirty-four columns is too many cells to format one by
one in Python within the export budget (a call per cell alone costs seconds).
So the SELECT itself returns finished cells, in C inside the database, the same
way on SQLite and PostgreSQL:

* text neutralised against formulas: a leading ``'`` when the first character is
  one of ``= + - @ TAB CR | %`` or the full-width forms of the first four
  (``export_formats.FORMULA_STARTS``). That is the first half of
  ``export_formats.neutralise``; the apostrophes after separators inside a cell
  are put in by the encoders, over a whole chunk at once (a test per cell here
  costs seconds per million pledges, see ``export_formats``);
* times as ISO 8601 UTC with six decimals and a ``Z``;
* money in major units as exact decimal text with the currency's number of
  decimals (integer arithmetic on SQLite, ``numeric`` on PostgreSQL; amounts are
  never negative: the pledge service refuses them), with a decimal point, or a
  decimal comma for the ``excel-fr`` CSV dialect;
* booleans as ``true`` / ``false``; ids and minor units as integers.

On PostgreSQL the CSV itself is then written by the server too (``COPY ... TO
STDOUT WITH (FORMAT csv)``, see ``exports.py``). On SQLite each pledge is one line
of its cells joined by ``printf`` (``cells_line``), unquoted, and a chunk's lines
come back as one block of bytes (``joined_lines``): one value a chunk where a string
a pledge cost a trip back to Python each, and a block whose cells need no quoting
becomes CSV in a few passes in C (``export_formats.csv_from_block``). Quoting the
cells in SQL was measured slower than that (about 8 against 5 s of SQLite's time
per million pledges).

Columns the app writes itself from closed sets (``code_cell``) skip the formula
test: a fifth of SQLite's time on the cells (3.7 against 4.4 s per million).

The expressions below are the cheap forms measured on PostgreSQL 15: a
first-character test by code point is three times cheaper than ``substr(...)
IN (...)`` (no collation), for example.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Numeric,
    String,
    case,
    cast,
    func,
    literal,
    true,
)

from app.pledges.export_formats import (
    CURRENCY_DIGITS,
    FORMULA_STARTS,
    LINE_SEPARATOR,
    RECORD_SEPARATOR,
)

_NO_DECIMALS = sorted(c for c, d in CURRENCY_DIGITS.items() if d == 0)
_THREE_DECIMALS = sorted(c for c, d in CURRENCY_DIGITS.items() if d == 3)


_FORMULA_CODES = sorted(ord(c) for c in FORMULA_STARTS)
_FORMULA_GLOB = "[" + "".join(c for c in FORMULA_STARTS if c != "-") + "-]*"
# SQLite: the currencies as one text, where instr() finds a code in one C call (a
# three-letter code cannot match across the commas).
_NO_DECIMALS_TEXT = ",".join(_NO_DECIMALS)
_THREE_DECIMALS_TEXT = ",".join(_THREE_DECIMALS)


def text_cell(value: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        # ascii() is the first character's code point (0 for ''): integer tests,
        # where comparing one-character strings would go through the collation.
        dangerous = func.ascii(value).in_(_FORMULA_CODES)
        # '' as NULL: COPY writes an empty string as "" and NULL as nothing, and a
        # CSV cell cannot tell them apart anyway; fewer quotes, faster line ends.
        value = func.nullif(value, literal(""))
    else:
        # One GLOB (a set of the first characters, "-" last: a literal there) where
        # substr(...) IN (...) probes a table of twelve: a third of the time a pledge.
        dangerous = value.op("GLOB")(literal(_FORMULA_GLOB))
    return case((dangerous, literal("'") + value), else_=value)


def code_cell(value: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """A column the app writes from a closed set of values, none starting a formula
    (the ``code`` columns of ``exports._spec``): no first-character test (for the
    eight of them, 0.75 s less of SQLite's time per million pledges)."""
    if dialect == "postgresql":
        return func.nullif(value, literal(""))  # as text_cell: '' written as nothing
    return value


def time_cell(value: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", value), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    # SQLite keeps UTC times as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (app.db.UTCDateTime).
    return func.replace(value, " ", "T") + literal("Z")


def money_cell(
    minor: ColumnElement[Any],
    currency: ColumnElement[Any],
    dialect: str,
    decimal_mark: str = ".",
) -> ColumnElement[Any]:
    if dialect == "postgresql":
        # numeric keeps the scale of its factor: 2500 * 0.01 is 25.00, 1234 * 1 is 1234.
        unit = case(
            (currency.in_(_NO_DECIMALS), literal(Decimal("1"))),
            (currency.in_(_THREE_DECIMALS), literal(Decimal("0.001"))),
            else_=literal(Decimal("0.01")),
        )
        text = cast(cast(minor, Numeric()) * unit, String)
        return text if decimal_mark == "." else func.replace(text, ".", decimal_mark)

    def major(places: int) -> ColumnElement[Any]:
        # One printf where casts, concatenations and a zero-padding substr took five
        # operations: 0.3 s less of SQLite's time per money column and million pledges.
        unit = 10**places
        return func.printf(literal(f"%d{decimal_mark}%0{places}d"), minor // unit, minor % unit)

    return case(
        (func.instr(literal(_NO_DECIMALS_TEXT), currency) > 0, cast(minor, String)),
        (func.instr(literal(_THREE_DECIMALS_TEXT), currency) > 0, major(3)),
        else_=major(2),
    )


def bool_cell(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((value == true(), literal("true")), else_=literal("false"))


def cells_line(cells: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    """SQLite: the cells as one text, joined by ``LINE_SEPARATOR`` (NULL as nothing)."""
    return func.printf(literal(LINE_SEPARATOR.join(["%s"] * len(cells))), *cells)


def joined_lines(line: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite: the aggregate of a chunk's lines as one block of UTF-8 bytes, joined by
    ``RECORD_SEPARATOR`` (``export_formats.csv_from_block``).

    One value a chunk instead of a row a pledge: SQLite then steps through the whole
    chunk without coming back to Python, where a row a pledge took the interpreter's
    lock back for each (the two reading threads and the event loop queued on it) and
    made a row object each. The lines keep the order of the query they come from:
    ``group_concat`` joins its rows in the order they come, and SQLite keeps the ORDER
    BY of a subquery read by an aggregate other than count, min or max (select.c,
    "Beware of these cases where the ORDER BY clause may not be safely omitted";
    ``test_export_crosses_chunk_boundaries_in_id_order``). A BLOB, not TEXT: the
    bytes are what the file gets, without a decode to ``str`` and an encode back."""
    return cast(func.group_concat(line, literal(RECORD_SEPARATOR)), LargeBinary)
