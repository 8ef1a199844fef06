"""A plan as CSV, and as the JSON object of the API and the command line.

CSV: RFC 4180 (comma, ``"`` quoting where needed, CRLF), UTF-8.

One line per interval; numbers with a fixed number of decimals and a decimal
point; empty cells where no seats were scheduled, and for an unbounded average
wait (the load at or over the seats scheduled). The one text cell, a segment's
label, goes through the pledges export's formula neutralisation
(``app/pledges/export_formats.neutralise``: a spreadsheet shows it, never runs it).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from app.planning.plan import Plan
from app.pledges.export_formats import neutralise

HEADER = (
    "start",
    "end",
    "label",
    "calls_per_15min",
    "offered_load_erlangs",
    "seats_needed",
    "seats_scheduled",
    "probability_waiting",
    "service_level",
    "average_wait_seconds",
    "gap",
)


def _number(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def plan_csv(plan: Plan) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in plan.intervals:
        writer.writerow(
            [
                i.start_clock,
                i.end_clock,
                neutralise(i.label),
                _number(i.calls, 2),
                _number(i.load, 3),
                i.seats_needed,
                "" if i.scheduled is None else i.scheduled,
                _number(i.probability_waiting, 4),
                _number(i.service_level, 4),
                _number(i.average_wait, 1),
                "" if i.gap is None else i.gap,
            ]
        )
    return out.getvalue()


def plan_dict(plan: Plan, handle: dict[str, Any]) -> dict[str, Any]:
    """The plan as the API answers it (``PlanOut``) and ``pledgeline plan --json`` prints it."""
    return {
        "handle": handle,
        "targets": {
            "service_level_target": plan.targets.target,
            "threshold_seconds": plan.targets.threshold_seconds,
            "max_average_wait_seconds": plan.targets.max_average_wait,
        },
        "intervals": [
            {
                "start": i.start_clock,
                "end": i.end_clock,
                "label": i.label,
                "calls_per_15min": i.calls,
                "offered_load_erlangs": i.load,
                "seats_needed": i.seats_needed,
                "seats_scheduled": i.scheduled,
                "probability_waiting": i.probability_waiting,
                "service_level": i.service_level,
                "average_wait_seconds": i.average_wait,
                "overloaded": i.scheduled is not None and i.load >= i.scheduled and i.load > 0,
                "gap": i.gap,
            }
            for i in plan.intervals
        ],
        "summary": {
            "total_calls": plan.total_calls,
            "peak_seats_needed": plan.peak_seats_needed,
            "seat_hours_needed": plan.seat_hours_needed,
            "intervals_short": plan.intervals_short,
        },
    }
