"""The staffing planner's API, CSV export and command line (app/planning/).

The Erlang formulas themselves: tests/test_planning_erlang.py; against the real call
path: tests/test_planning_simulated.py; the pages: tests/test_browser_planning.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.acd.models import Call
from app.planning import erlang
from bench.erlang import CallPath, schedule
from tests.conftest import SECRET, Hotline
from tests.procs import run_cli

# 50 calls per 15 minutes of 180 s: 10 erlangs, the worked example (14 seats for 80 %
# within 20 s, tests/test_planning_erlang.py).
RUNDOWN = [
    {"start": "20:00", "end": "20:30", "calls_per_15min": 50, "label": "Opening"},
    {"start": "20:30", "end": "20:45", "calls_per_15min": 150, "label": "Appeal 1", "seats": 20},
    {"start": "20:45", "end": "21:00", "calls_per_15min": 0},
]
TYPED = {"talk_seconds": 150, "wrapup_seconds": 30}
RUNDOWN_CSV = (
    "start,end,calls_per_15min,label,seats\r\n"
    "20:00,20:30,50,Opening,\r\n"
    "20:30,20:45,150,Appeal 1,20\r\n"
    "20:45,21:00,0,,\r\n"
)


async def _plan(hotline: Hotline, **body: Any) -> Any:
    response = await hotline.http.post("/planning/plan", json={"segments": RUNDOWN, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def test_plan_per_interval(hotline: Hotline) -> None:
    plan = await _plan(hotline, **TYPED, scheduled_seats=14)
    rows = plan["intervals"]
    assert [(r["start"], r["end"]) for r in rows] == [
        ("20:00", "20:15"),
        ("20:15", "20:30"),
        ("20:30", "20:45"),
        ("20:45", "21:00"),
    ]
    first = rows[0]
    assert first["label"] == "Opening"
    assert first["offered_load_erlangs"] == pytest.approx(10.0)
    assert first["seats_needed"] == 14
    assert first["seats_scheduled"] == 14 and first["gap"] == 0
    assert first["probability_waiting"] == pytest.approx(erlang.erlang_c(10, 14))
    assert first["service_level"] == pytest.approx(0.8884, abs=5e-4)
    assert first["average_wait_seconds"] == pytest.approx(7.8, abs=0.05)
    # The appeal: 30 erlangs on 14 seats is overloaded (the wait has no bound).
    appeal = rows[2]
    assert appeal["offered_load_erlangs"] == pytest.approx(30.0)
    assert appeal["seats_needed"] == erlang.seats_needed(30, 180, target=0.8, threshold_seconds=20)
    assert appeal["overloaded"] is True
    assert appeal["average_wait_seconds"] is None and appeal["service_level"] == 0.0
    assert appeal["gap"] == appeal["seats_needed"] - 14
    # No calls: no seat needed, 14 scheduled is 14 too many.
    assert rows[3]["seats_needed"] == 0 and rows[3]["gap"] == -14
    summary = plan["summary"]
    assert summary["peak_seats_needed"] == appeal["seats_needed"]
    assert summary["total_calls"] == 250
    assert summary["intervals_short"] == 1
    assert summary["seat_hours_needed"] == pytest.approx(sum(r["seats_needed"] for r in rows) / 4)
    assert plan["handle"] == {
        "talk_seconds": 150,
        "wrapup_seconds": 30,
        "handle_seconds": 180,
        "talk_source": "typed",
        "wrapup_source": "typed",
        "answered_calls": 0,
    }


async def test_scheduled_seats_per_interval_or_from_the_rundown(hotline: Hotline) -> None:
    per_interval = await _plan(hotline, **TYPED, scheduled_seats=[10, 12, 40, 2])
    assert [r["seats_scheduled"] for r in per_interval["intervals"]] == [10, 12, 40, 2]
    # None typed: the segments' own seats (the appeal has 20, the others none).
    from_rundown = await _plan(hotline, **TYPED)
    rows = from_rundown["intervals"]
    assert [r["seats_scheduled"] for r in rows] == [None, None, 20, None]
    assert rows[0]["gap"] is None and rows[0]["service_level"] is None
    assert rows[2]["gap"] == rows[2]["seats_needed"] - 20


async def test_max_average_wait_adds_seats(hotline: Hotline) -> None:
    plain = await _plan(hotline, **TYPED)
    strict = await _plan(hotline, **TYPED, max_average_wait_seconds=5)
    assert plain["intervals"][0]["seats_needed"] == 14
    assert strict["intervals"][0]["seats_needed"] == 15  # ASA(14) = 7.8 s, ASA(15) = 3.7 s
    assert strict["targets"]["max_average_wait_seconds"] == 5


async def test_a_show_past_midnight(hotline: Hotline) -> None:
    segments = [
        {"start": "23:30", "end": "00:15", "calls_per_15min": 10},
        {"start": "00:15", "end": "00:30", "calls_per_15min": 5},
    ]
    r = await hotline.http.post("/planning/plan", json={"segments": segments, **TYPED})
    assert r.status_code == 200, r.text
    assert [i["start"] for i in r.json()["intervals"]] == ["23:30", "23:45", "00:00", "00:15"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"segments": [{"start": "20:05", "end": "21:00", "calls_per_15min": 5}]},
            "segments.0.start",
        ),
        (
            {"segments": [{"start": "20:00", "end": "25:00", "calls_per_15min": 5}]},
            "segments.0.end",
        ),
        (
            {"segments": [{"start": "20:00", "end": "21:00", "calls_per_15min": -1}]},
            "segments.0.calls_per_15min",
        ),
        ({"segments": []}, "segments"),
        ({"segments": RUNDOWN, "scheduled_seats": [1, 2]}, "scheduled_seats"),
        ({"segments": RUNDOWN, "service_level_target": 1.0}, "service_level_target"),
        ({"segments": RUNDOWN, "talk_seconds": 0}, "talk_seconds"),
        ({"segments": RUNDOWN, "max_average_wait_seconds": 0}, "max_average_wait_seconds"),
        # 1,000,000 calls of 10 hours every 15 minutes: beyond any number of seats.
        (
            {
                "segments": [{"start": "20:00", "end": "20:15", "calls_per_15min": 1_000_000}],
                "talk_seconds": 36_000,
            },
            "segments",
        ),
        (
            {
                "segments": [
                    {"start": "20:00", "end": "21:00", "calls_per_15min": 5},
                    {"start": "20:30", "end": "21:00", "calls_per_15min": 5},
                ]
            },
            "segments.1.start",
        ),
        ({"segments": RUNDOWN, "campaign_id": 999_999}, "campaign_id"),
    ],
)
async def test_bad_input_is_refused_with_the_field(
    hotline: Hotline, body: dict[str, Any], field: str
) -> None:
    for path in ("/planning/plan", "/planning/plan.csv"):
        r = await hotline.http.post(path, json=body)
        assert r.status_code in (404, 422), r.text
        refusal = r.json()
        assert set(refusal) >= {"code", "message", "field"}
        assert refusal["field"] == field, refusal


async def test_card_numbers_are_refused_in_labels(hotline: Hotline) -> None:
    segments = [
        {"start": "20:00", "end": "20:15", "calls_per_15min": 5, "label": "4111 1111 1111 1111"}
    ]
    r = await hotline.http.post("/planning/plan", json={"segments": segments})
    assert r.status_code == 422
    assert r.json()["code"] == "card_number"
    assert "4111" not in r.text


async def test_plan_as_csv(hotline: Hotline) -> None:
    segments = [
        {"start": "20:00", "end": "20:15", "calls_per_15min": 50, "label": '=HYPERLINK("x")'},
        {"start": "20:15", "end": "20:30", "calls_per_15min": 50, "label": 'Appeal, "big"'},
    ]
    body = {"segments": segments, **TYPED, "scheduled_seats": 12}
    r = await hotline.http.post("/planning/plan.csv", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode()
    assert text.count("\r\n") == 3 and text.endswith("\r\n")  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows[0]["label"] == '\'=HYPERLINK("x")'  # shown as text, never run
    assert rows[1]["label"] == 'Appeal, "big"'
    assert rows[0]["seats_needed"] == "14" and rows[0]["seats_scheduled"] == "12"
    assert rows[0]["offered_load_erlangs"] == "10.000"
    assert rows[0]["gap"] == "2"
    assert float(rows[0]["average_wait_seconds"]) == pytest.approx(
        erlang.average_wait(10, 12, 180), abs=0.05
    )


async def test_import_a_rundown_file(hotline: Hotline) -> None:
    r = await hotline.http.post(
        "/planning/rundowns/import",
        content=("\ufeff" + RUNDOWN_CSV.replace(",", ";")).encode(),  # Excel: BOM and ;
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["segments"] == [
        {
            "start": "20:00",
            "end": "20:30",
            "calls_per_15min": 50,
            "label": "Opening",
            "seats": None,
        },
        {
            "start": "20:30",
            "end": "20:45",
            "calls_per_15min": 150,
            "label": "Appeal 1",
            "seats": 20,
        },
        {"start": "20:45", "end": "21:00", "calls_per_15min": 0, "label": "", "seats": None},
    ]


async def test_a_bad_rundown_file_is_refused_line_by_line(hotline: Hotline) -> None:
    bad = (
        "Start,End,Calls_per_15min,Label\n"
        "20:00,20:30,50,ok\n"
        "20:10,20:30,x,\n"
        "20:30,20:45,10,card 4111 1111 1111 1111\n"
        "\n"
        "21:00,21:15,-3,\n"
    )
    r = await hotline.http.post("/planning/rundowns/import", content=bad.encode())
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "bad_file" and body["field"] == "file"
    assert [(p["line"], p["column"]) for p in body["problems"]] == [
        (3, "start"),
        (3, "calls_per_15min"),
        (4, "label"),
        (6, "calls_per_15min"),
    ]
    assert "4111" not in r.text
    missing = await hotline.http.post("/planning/rundowns/import", content=b"begin,finish\n1,2\n")
    assert missing.status_code == 422
    assert {p["column"] for p in missing.json()["problems"]} == {"start", "end", "calls_per_15min"}


async def test_a_rundown_file_s_problems_are_told_in_the_request_language(
    hotline: Hotline,
) -> None:
    bad = b"start,end,calls_per_15min,label\n20:10,20:30,x,\n"
    french = await hotline.http.post("/planning/rundowns/import", content=bad)
    english = await hotline.http.post(
        "/planning/rundowns/import", content=bad, headers={"Accept-Language": "en"}
    )
    assert french.status_code == english.status_code == 422
    assert french.json()["problems"] == [
        {
            "line": 2,
            "column": "start",
            "reason": "pas sur un quart d'heure (les intervalles du plan durent 15 minutes)",
        },
        {"line": 2, "column": "calls_per_15min", "reason": "pas un nombre"},
    ]
    assert english.json()["problems"] == [
        {
            "line": 2,
            "column": "start",
            "reason": "not on a quarter hour (the plan's intervals are 15 minutes)",
        },
        {"line": 2, "column": "calls_per_15min", "reason": "not a number"},
    ]
    assert french.json()["message"] == "le conducteur n'a pas été lu : 2 problèmes"
    # A plan's segments typed in the request: the same reasons, as the refusal's message.
    body = {"segments": [{"start": "20:10", "end": "20:30", "calls_per_15min": 5}]}
    r = await hotline.http.post("/planning/plan", json=body)
    assert r.status_code == 422 and r.json()["field"] == "segments.0.start"
    assert r.json()["message"].startswith("pas sur un quart d'heure")


async def _campaign_with_calls(hotline: Hotline, calls: int) -> tuple[int, list[int]]:
    """A campaign whose ``calls`` calls went through the real call path, completed."""
    path = CallPath(hotline.http, SECRET)
    await path.staff(2)
    await path.play(schedule(5, calls, 1.0))
    campaign_id = (await hotline.http.get("/campaigns")).json()[0]["id"]
    async with hotline.db.read() as session:
        ids = list(await session.scalars(select(Call.id).order_by(Call.id)))
    return campaign_id, ids


async def _set_times(hotline: Hotline, call_id: int, **values: dt.datetime) -> None:
    # The calls took milliseconds of real time: give them the times of a real show.
    async with hotline.db.engine.begin() as conn:
        await conn.execute(update(Call).where(Call.id == call_id).values(**values))


async def test_handle_times_default_to_the_campaigns_measured_ones(hotline: Hotline) -> None:
    campaign_id, ids = await _campaign_with_calls(hotline, 4)
    start = dt.datetime(2026, 11, 20, 19, 0, tzinfo=dt.UTC)
    for n, call_id in enumerate(ids):
        answered = start + dt.timedelta(minutes=n)
        hangup = answered + dt.timedelta(seconds=100 + 20 * n)  # 100, 120, 140, 160: 130
        ended = hangup + dt.timedelta(seconds=10 * n)  # 0, 10, 20, 30: mean 15
        await _set_times(hotline, call_id, answered_at=answered, hangup_at=hangup, ended_at=ended)
    r = await hotline.http.get(f"/planning/handle-times?campaign_id={campaign_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "talk_seconds": 130.0,
        "wrapup_seconds": 15.0,
        "handle_seconds": 145.0,
        "answered_calls": 4,
        "source": "measured",
    }
    plan = await _plan(hotline, campaign_id=campaign_id, wrapup_seconds=20)
    assert plan["handle"]["talk_seconds"] == 130.0 and plan["handle"]["talk_source"] == "measured"
    assert plan["handle"]["wrapup_seconds"] == 20 and plan["handle"]["wrapup_source"] == "typed"
    assert plan["intervals"][0]["offered_load_erlangs"] == pytest.approx(50 / 900 * 150)


async def test_a_campaign_without_answered_calls_uses_the_defaults(hotline: Hotline) -> None:
    campaign = await hotline.http.post(
        "/campaigns", json={"name": "New show", "dialled_numbers": ["+33800000077"]}
    )
    campaign_id = campaign.json()["id"]
    times = (await hotline.http.get(f"/planning/handle-times?campaign_id={campaign_id}")).json()
    assert times["source"] == "default" and times["answered_calls"] == 0
    assert times["handle_seconds"] == 180.0
    plan = await _plan(hotline, campaign_id=campaign_id)
    assert plan["handle"]["talk_source"] == "default"
    assert plan["intervals"][0]["offered_load_erlangs"] == pytest.approx(10.0)


async def test_rundown_derived_from_an_earlier_campaign(hotline: Hotline) -> None:
    campaign_id, ids = await _campaign_with_calls(hotline, 6)
    # UTC 19:00 is 20:00 in Paris in November (the campaign's time zone).
    base = dt.datetime(2026, 11, 20, 19, 0, tzinfo=dt.UTC)
    minutes = [1, 5, 14, 31, 44, 50]  # 3 in 19:00-19:15, none in 19:15, 2 in 19:30, 1 in 19:45
    for call_id, minute in zip(ids, minutes, strict=True):
        await _set_times(hotline, call_id, received_at=base + dt.timedelta(minutes=minute))
    r = await hotline.http.get(f"/planning/rundowns/derived?campaign_id={campaign_id}")
    assert r.status_code == 200, r.text
    assert [(s["start"], s["end"], s["calls_per_15min"]) for s in r.json()["segments"]] == [
        ("20:00", "20:15", 3),
        ("20:15", "20:30", 0),
        ("20:30", "20:45", 2),
        ("20:45", "21:00", 1),
    ]
    scaled = await hotline.http.get(
        f"/planning/rundowns/derived?campaign_id={campaign_id}&scale=1.5"
        "&since=2026-11-20T19:30:00Z&until=2026-11-20T20:00:00Z"
    )
    assert [s["calls_per_15min"] for s in scaled.json()["segments"]] == [3, 1.5]
    # A call on the next day: more than one show, so the organiser must choose one.
    await _set_times(hotline, ids[0], received_at=base + dt.timedelta(days=1, hours=1))
    r = await hotline.http.get(f"/planning/rundowns/derived?campaign_id={campaign_id}")
    assert r.status_code == 422 and r.json()["field"] == "since"
    empty = await hotline.http.get(
        f"/planning/rundowns/derived?campaign_id={campaign_id}&since=2030-01-01T00:00:00Z"
    )
    assert empty.status_code == 422 and empty.json()["field"] == "campaign_id"
    naive = await hotline.http.get(
        f"/planning/rundowns/derived?campaign_id={campaign_id}&since=2026-11-20T19:00:00"
    )
    assert naive.status_code == 422 and naive.json()["field"] == "since"


# The command line needs no database: the plan is computed from the file alone.
async def test_cli_plan_prints_a_table_csv_and_json(
    hotline: Hotline, database_url: str, tmp_path: Path
) -> None:
    rundown = tmp_path / "rundown.csv"
    rundown.write_text(RUNDOWN_CSV)
    code, out, err = await run_cli(database_url, "plan", str(rundown), "--seats", "14")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["interval", "calls", "erlangs", "needed"]
    assert lines[2].split()[:6] == ["20:00-20:15", "50.0", "10.00", "14", "14", "0.174"]
    assert "Appeal 1" in lines[4] and "inf" in lines[4]
    assert "peak seats needed" in out

    code, out, _ = await run_cli(
        database_url, "plan", str(rundown), "--seats", "14", "--csv", "--max-wait", "5"
    )
    assert code == 0
    api = await hotline.http.post(
        "/planning/plan.csv",
        json={
            "segments": RUNDOWN,
            **TYPED,
            "scheduled_seats": 14,
            "max_average_wait_seconds": 5,
        },
    )
    assert out.replace("\r\n", "\n") == api.text.replace("\r\n", "\n")

    code, out, _ = await run_cli(
        database_url,
        "plan",
        str(rundown),
        "--json",
        "--seats",
        "10,12,40,2",
        "--talk-seconds",
        "200",
        "--wrapup-seconds",
        "25",
        "--target",
        "0.9",
        "--threshold",
        "15",
    )
    assert code == 0
    plan = json.loads(out)
    assert [i["seats_scheduled"] for i in plan["intervals"]] == [10, 12, 40, 2]
    assert plan["handle"]["handle_seconds"] == 225
    load = 50 / 900 * 225
    assert plan["intervals"][0]["seats_needed"] == erlang.seats_needed(
        load, 225, target=0.9, threshold_seconds=15
    )


async def test_cli_plan_refuses_a_bad_file_with_line_numbers(
    database_url: str, tmp_path: Path
) -> None:
    rundown = tmp_path / "rundown.csv"
    rundown.write_text("start,end,calls_per_15min\n20:00,20:30,50\n20:07,20:30,5\n")
    code, out, err = await run_cli(database_url, "plan", str(rundown))
    assert code == 2 and out == ""
    assert "line 3, column start: not on a quarter hour" in err
    code, _, err = await run_cli(database_url, "plan", str(rundown), "--seats", "1,2")
    assert code == 2
    code, _, err = await run_cli(database_url, "plan", str(tmp_path / "missing.csv"))
    assert code == 2 and "cannot read" in err
