"""``pledgeline plan FILE``: a staffing plan from a rundown CSV file, on the command line.

Needs no database and no server: the handle time is typed (or the defaults of
``app/planning/service.py``). Prints a table for people, or ``--csv`` (the API's
export) or ``--json`` (the API's answer). Exit status 2 with the problems on
stderr for a file or an option the planner cannot take.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.planning import rundown, service
from app.planning.export import plan_csv, plan_dict
from app.planning.plan import DEFAULT_TARGET, DEFAULT_THRESHOLD_SECONDS, Plan, Targets, make_plan


def _seats(text: str) -> int | list[int]:
    """``12`` (every interval) or ``10,12,14`` (one per interval)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number, or one per interval: 10,12,14") from None
    if any(not 0 <= v <= rundown.MAX_SEATS for v in values):
        raise argparse.ArgumentTypeError(f"seats from 0 to {rundown.MAX_SEATS}")
    return values[0] if len(values) == 1 and "," not in text else values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="the rundown: start,end,calls_per_15min[,label][,seats]"
    )
    parser.add_argument(
        "--talk-seconds",
        type=float,
        default=service.DEFAULT_TALK_SECONDS,
        help=f"mean talk time (default {service.DEFAULT_TALK_SECONDS:g})",
    )
    parser.add_argument(
        "--wrapup-seconds",
        type=float,
        default=service.DEFAULT_WRAPUP_SECONDS,
        help=f"mean wrap-up time (default {service.DEFAULT_WRAPUP_SECONDS:g})",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=DEFAULT_TARGET,
        help=f"service-level target, a share below 1 (default {DEFAULT_TARGET:g})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD_SECONDS,
        help=f"answered within this many seconds (default {DEFAULT_THRESHOLD_SECONDS:g})",
    )
    parser.add_argument("--max-wait", type=float, help="maximum average wait in seconds")
    parser.add_argument(
        "--seats",
        type=_seats,
        help="seats scheduled: one number, or one per interval (10,12,14); "
        "default: the file's seats column",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="print the plan as CSV")
    output.add_argument("--json", action="store_true", help="print the plan as JSON")


def _figure(value: float | None, fmt: str, none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def table(plan: Plan) -> str:
    """The plan for people: one line per interval, then the totals."""
    head = (
        f"{'interval':<13} {'calls':>7} {'erlangs':>8} {'needed':>6} {'sched':>5} "
        f"{'P(wait)':>7} {'SL':>6} {'ASA s':>7} {'gap':>4}  label"
    )
    lines = [head, "-" * len(head)]
    for i in plan.intervals:
        wait = _figure(i.average_wait, ".1f", "-" if i.scheduled is None else "inf")
        level = "-" if i.service_level is None else f"{i.service_level:.1%}"
        lines.append(
            f"{i.start_clock}-{i.end_clock:<7} {i.calls:>7.1f} {i.load:>8.2f} "
            f"{i.seats_needed:>6} {_figure(i.scheduled, 'd'):>5} "
            f"{_figure(i.probability_waiting, '.3f'):>7} {level:>6} {wait:>7} "
            f"{_figure(i.gap, '+d'):>4}  {i.label}"
        )
    target = plan.targets
    lines.append("")
    lines.append(
        f"handle time {plan.handle_seconds:g} s; target {target.target:.0%} within "
        f"{target.threshold_seconds:g} s"
        + (
            f", average wait at most {target.max_average_wait:g} s"
            if target.max_average_wait
            else ""
        )
    )
    lines.append(
        f"calls {plan.total_calls:g}; peak seats needed {plan.peak_seats_needed}; "
        f"seat-hours needed {plan.seat_hours_needed:g}; intervals short {plan.intervals_short}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        segments = rundown.parse_csv(data)
    except rundown.RundownRefused as exc:
        print(f"{args.file}: {exc.message}", file=sys.stderr)
        for problem in exc.problems.found:
            where = f"line {problem.line}" if problem.line else "file"
            column = f", column {problem.column}" if problem.column else ""
            print(f"  {where}{column}: {problem.reason}", file=sys.stderr)
        return 2
    targets = Targets(args.target, args.threshold, args.max_wait)
    try:
        plan = make_plan(
            segments,
            handle_seconds=args.talk_seconds + args.wrapup_seconds,
            targets=targets,
            scheduled=args.seats,
        )
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        sys.stdout.write(plan_csv(plan))
    elif args.json:
        handle: dict[str, Any] = {
            "talk_seconds": args.talk_seconds,
            "wrapup_seconds": args.wrapup_seconds,
            "handle_seconds": args.talk_seconds + args.wrapup_seconds,
            "talk_source": "typed",
            "wrapup_source": "typed",
            "answered_calls": 0,
        }
        print(json.dumps(plan_dict(plan, handle), indent=2))
    else:
        print(table(plan))
    return 0
