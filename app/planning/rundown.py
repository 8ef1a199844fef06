"""The show's rundown: segments with a start, an end and the calls expected per 15 minutes.

Pure: no database (an earlier campaign's calls are counted by ``service``).

* **Times** are clock times ``HH:MM`` (``24:00`` for midnight at an end), in the
  campaign's time zone, on quarter hours: the plan's intervals are 15 minutes.
* **Order.** Segments come in the order of the show. A time earlier than the one
  before it means the next day (a show running past midnight); the whole rundown
  must last at most 24 hours, so segments out of order are caught by that rule.
* **Gaps** between segments are allowed (no interval is planned there); overlaps
  are not possible under the ordering rule.
* A segment may carry the seats scheduled for it (``seats``) and a ``label``
  (free text, e.g. "Appeal 2", refused if it holds a card number).

The CSV file: a header line naming the columns (``start``, ``end``,
``calls_per_15min``, optionally ``label`` and ``seats``; any order, case and
surrounding spaces ignored), comma- or semicolon-separated, UTF-8 (a byte-order
mark is fine) or Windows-1252. A file with problems is refused whole with every
problem found, each with its line number and column, never the value.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.cardguard import looks_like_card_data
from app.errors import Invalid
from app.i18n import N_, Message
from app.text_files import BadValue, LineProblem, decode_upload

INTERVAL_MINUTES = 15
DAY_MINUTES = 24 * 60
MAX_SEGMENTS = 400
MAX_CALLS_PER_INTERVAL = 1_000_000.0
MAX_SEATS = 20_000
MAX_LABEL = 100
MAX_FILE_BYTES = 256 * 1024
MAX_PROBLEMS = 100
COLUMNS = ("start", "end", "calls_per_15min", "label", "seats")
REQUIRED_COLUMNS = ("start", "end", "calls_per_15min")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Segment:
    """One part of the show: from ``start`` to ``end`` (minutes after midnight of the
    show's first day, so past 1440 after midnight), ``calls`` expected per 15 minutes."""

    start: int
    end: int
    calls: float
    label: str = ""
    seats: int | None = None


@dataclass(frozen=True)
class Interval:
    """One 15-minute interval of the plan."""

    start: int
    calls: float
    label: str = ""
    seats: int | None = None

    @property
    def end(self) -> int:
        return self.start + INTERVAL_MINUTES


@dataclass
class Problems:
    found: list[LineProblem] = field(default_factory=list)
    more: int = 0

    def add(self, line: int | None, column: str | None, reason: Message) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(LineProblem(line, column, reason))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.found)


class RundownRefused(Invalid):
    """A rundown file with problems: none of it is read."""

    code = "bad_file"

    def __init__(self, problems: Problems) -> None:
        count = len(problems.found) + problems.more
        super().__init__(
            N_("the rundown was not read: {count} problem")
            if count == 1
            else N_("the rundown was not read: {count} problems"),
            field="file",
            count=count,
        )
        self.problems = problems

    def body(self, language: str = "en") -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "problems": [p.as_dict(language) for p in self.problems.found],
            "more_problems": self.problems.more,
        }


def clock(minutes: int) -> str:
    """``HH:MM`` of a time in minutes after the show's first midnight."""
    minutes %= DAY_MINUTES
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_clock(text: str, *, end: bool = False) -> int:
    """Minutes after midnight of ``HH:MM`` on a quarter hour (``24:00`` only as an end)."""
    match = _CLOCK.match(text.strip())
    if match is None:
        raise BadValue(Message("not a time HH:MM"))
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise BadValue(Message("not a time of day"))
    if minutes % INTERVAL_MINUTES:
        raise BadValue(Message("not on a quarter hour (the plan's intervals are 15 minutes)"))
    return hours * 60 + minutes


def parse_end_clock(text: str) -> int:
    return parse_clock(text, end=True)


def check_calls(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= MAX_CALLS_PER_INTERVAL):
        raise BadValue(
            Message(
                "calls per 15 minutes must be between 0 and {most}",
                most=format(MAX_CALLS_PER_INTERVAL, "g"),
            )
        )
    return value


def check_label(text: str) -> str:
    if len(text) > MAX_LABEL:
        raise BadValue(Message("longer than {limit} characters", limit=MAX_LABEL))
    if looks_like_card_data(text):
        raise BadValue(Message("holds what looks like a card number: never type one here"))
    return text


@dataclass(frozen=True)
class RawSegment:
    """A segment as typed: clock times, not yet placed in the show."""

    start: int
    end: int
    calls: float
    label: str = ""
    seats: int | None = None


def place(raw: Sequence[RawSegment]) -> tuple[list[Segment], list[tuple[int, str, Message]]]:
    """Put typed segments on the show's time line (see the module docstring).

    Returns the segments and the problems as ``(index, field, reason)``."""
    problems: list[tuple[int, str, Message]] = []
    segments: list[Segment] = []
    if not raw:
        problems.append((0, "start", Message("the rundown has no segment")))
        return segments, problems
    if len(raw) > MAX_SEGMENTS:
        reason = Message("more than {most} segments", most=MAX_SEGMENTS)
        problems.append((MAX_SEGMENTS, "start", reason))
        return segments, problems
    day = 0  # whole days added to the clock times so far
    previous_end: int | None = None
    first_start: int | None = None
    for index, item in enumerate(raw):
        start = item.start + day
        if previous_end is not None and start < previous_end:
            day += DAY_MINUTES  # earlier than the last end: the next day
            start += DAY_MINUTES
        end = item.end + (start - item.start)
        if end <= start:
            end += DAY_MINUTES  # ends after midnight
        if first_start is None:
            first_start = start
        if end - first_start > DAY_MINUTES:
            problems.append(
                (
                    index,
                    "start",
                    Message("the rundown would last more than 24 hours: segments in order?"),
                )
            )
            break
        segments.append(Segment(start, end, item.calls, item.label, item.seats))
        previous_end = end
    return segments, problems


def intervals(segments: Sequence[Segment]) -> list[Interval]:
    """The 15-minute intervals the segments cover, in order."""
    return [
        Interval(start, segment.calls, segment.label, segment.seats)
        for segment in segments
        for start in range(segment.start, segment.end, INTERVAL_MINUTES)
    ]


def _header_map(cells: list[str], problems: Problems) -> dict[str, int]:
    names = [c.strip().lower().replace(" ", "_") for c in cells]
    found: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in COLUMNS and name not in found:
            found[name] = position
    for name in REQUIRED_COLUMNS:
        if name not in found:
            problems.add(1, name, Message("no column '{name}' in the header line", name=name))
    return found


def parse_csv(data: bytes) -> list[Segment]:
    """The segments of a rundown file, or :class:`RundownRefused` with every problem."""
    problems = Problems()
    if len(data) > MAX_FILE_BYTES:
        problems.add(
            None, None, Message("the file is larger than {most} bytes", most=MAX_FILE_BYTES)
        )
        raise RundownRefused(problems)
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        problems.add(line, None, Message("not a text file"))
        raise RundownRefused(problems)
    text = decode_upload(data)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    if not numbered:
        problems.add(None, None, Message("the file is empty"))
        raise RundownRefused(problems)
    header_line, header = numbered[0]
    columns = _header_map(header, problems)
    if problems:
        raise RundownRefused(problems)
    raw: list[RawSegment] = []
    lines: list[int] = []
    for line, row in numbered[1:]:
        segment = _read_row(line, row, columns, problems)
        if segment is not None:
            raw.append(segment)
            lines.append(line)
    if not numbered[1:]:
        problems.add(header_line, None, Message("the file has a header but no segment"))
    if problems:
        raise RundownRefused(problems)
    segments, placing = place(raw)
    for index, column, reason in placing:
        problems.add(lines[index] if index < len(lines) else None, column, reason)
    if problems:
        raise RundownRefused(problems)
    return segments


def _cell(row: list[str], columns: dict[str, int], name: str) -> str | None:
    position = columns.get(name)
    if position is None or position >= len(row):
        return None
    return row[position].strip()


def _read_row(
    line: int, row: list[str], columns: dict[str, int], problems: Problems
) -> RawSegment | None:
    ok = True
    times: dict[str, int] = {}
    for name in ("start", "end"):
        value = _cell(row, columns, name)
        try:
            if not value:
                raise BadValue(Message("missing"))
            times[name] = parse_clock(value, end=name == "end")
        except BadValue as exc:
            problems.add(line, name, exc.reason)
            ok = False
    calls = 0.0
    value = _cell(row, columns, "calls_per_15min")
    try:
        if not value:
            raise BadValue(Message("missing"))
        calls = check_calls(float(value.replace(",", ".")))
    except BadValue as exc:
        problems.add(line, "calls_per_15min", exc.reason)
        ok = False
    except ValueError:
        problems.add(line, "calls_per_15min", Message("not a number"))
        ok = False
    label = _cell(row, columns, "label") or ""
    try:
        check_label(label)
    except BadValue as exc:
        problems.add(line, "label", exc.reason)
        ok = False
    seats: int | None = None
    value = _cell(row, columns, "seats")
    if value:
        if not value.isdigit() or int(value) > MAX_SEATS:
            reason = Message("not a whole number of seats from 0 to {most}", most=MAX_SEATS)
            problems.add(line, "seats", reason)
            ok = False
        else:
            seats = int(value)
    if not ok:
        return None
    return RawSegment(times["start"], times["end"], calls, label, seats)


def to_csv(segments: Sequence[Segment]) -> str:
    """A rundown file ``parse_csv`` reads back (the derived rundown, for editing)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for s in segments:
        end = "24:00" if s.end % DAY_MINUTES == 0 else clock(s.end)
        seats = "" if s.seats is None else s.seats
        writer.writerow([clock(s.start), end, f"{s.calls:g}", s.label, seats])
    return out.getvalue()
