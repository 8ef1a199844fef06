"""The SIP benchmark (bench/sip.py) at a trivial size, so it keeps running.

Two real calls: SIPp callers into a real Asterisk, Pledgeline (uvicorn, SQLite)
routing them to SIPp seats. Counts only; the figures' values are the benchmark's.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from bench.sip import max_overlap, run
from tests.asterisk_pbx import asterisk_problem


def test_max_overlap_counts_intervals_open_at_once() -> None:
    t = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)

    def at(s: int) -> dt.datetime:
        return t + dt.timedelta(seconds=s)

    assert max_overlap([]) == 0
    assert max_overlap([(at(0), at(2)), (at(1), at(3)), (at(2), at(4))]) == 2
    # One ends as the next starts: never both.
    assert max_overlap([(at(0), at(1)), (at(1), at(2))]) == 1


def test_two_calls_reach_a_volunteer_through_asterisk() -> None:
    problem = asterisk_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the telephony tests cannot run: {problem}")
        pytest.skip(problem)
    figures = run(
        {
            "rates": "2",
            "step_seconds": "1",
            "talk_seconds": "0.5",
            "seats": "3",
            "database": "sqlite",
        }
    )
    (step,) = figures["steps"]
    assert step["calls"] == 2
    assert step["sipp_successful"] == 2
    assert step["sipp_failed"] == 0
    assert step["reached_volunteer"] == 2
    assert step["lost"] == 0
    assert step["setup_ms"]["n"] == 2
    assert step["max_bridged"] >= 1
    assert figures["server_errors"] == 0
