"""The simulated platform: arrivals, patient and impatient callers, volunteers at work."""

from __future__ import annotations

from typing import Any

from app.seed import seed_demo
from app.telephony.simulated import (
    RETRY,
    UNTIL_ACKNOWLEDGED,
    ArrivalProfile,
    Backoff,
    random_french_number,
)
from tests.conftest import Hotline, wait_for


def test_arrival_profile_spikes_on_air() -> None:
    profile = ArrivalProfile(per_minute=60, spike_every=100, spike_factor=5, spike_seconds=10)
    assert profile.rate(5) == 5.0  # inside the spike that opens each period
    assert profile.rate(50) == 1.0
    assert profile.rate(105) == 5.0


def test_retries_back_off_bounded_and_jittered() -> None:
    import itertools
    import random

    rng = random.Random(3)
    delays = list(Backoff(first=0.2, longest=2.0, attempts=6).delays(rng))
    assert len(delays) == 5  # five waits between six attempts
    ceilings = [0.2, 0.4, 0.8, 1.6, 2.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # Jittered: two platforms retrying together do not wait alike.
    other = list(Backoff(first=0.2, longest=2.0, attempts=6).delays(random.Random(4)))
    assert other != delays
    # Webhooks give up within half a minute; hang-ups never, waiting at most 2 s each time.
    assert RETRY.attempts is not None and sum(RETRY.delays(rng)) < 30
    forever = list(itertools.islice(UNTIL_ACKNOWLEDGED.delays(rng), 1000))
    assert len(forever) == 1000 and max(forever) <= 2.0


def test_caller_numbers_look_french_or_withheld() -> None:
    import random

    rng = random.Random(7)
    numbers = [random_french_number(rng) for _ in range(500)]
    withheld = [n for n in numbers if n is None]
    assert 0 < len(withheld) < 100
    assert all(len(n) == 10 and n.startswith("0") for n in numbers if n is not None)


async def test_simulated_calls_flow_end_to_end(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(
        simulate=True,
        sim_seed=42,
        sim_rate_per_minute=120,
        sim_spike_every_seconds=0,
        sim_talk_seconds=0.3,
        sim_wrapup_seconds=0.2,
        sim_patience_seconds=20.0,
    )
    await seed_demo(hotline.db)

    async def calls_completed_and_abandoned() -> bool:
        rows = await hotline.sql("select state, count(*) from calls group by state")
        states = dict(rows)
        return states.get("completed", 0) >= 5

    await wait_for(calls_completed_and_abandoned, timeout=30)
    # Nobody holds two calls, and every completed call was answered by a volunteer.
    busy = await hotline.sql(
        "select agent_id, count(*) from calls where state in ('offered','connected')"
        " and agent_id is not null group by agent_id having count(*) > 1"
    )
    assert busy == []
    completed = await hotline.sql(
        "select count(*) from calls where state = 'completed' and answered_at is null"
    )
    assert completed == [(0,)]
    logged_in = await hotline.sql(
        "select count(*) from agents where login like 'volunteer%' and state != 'logged_out'"
    )
    assert logged_in == [(20,)]


async def _simulated_callbacks(hotline_factory: Any, dial_answer: float) -> Hotline:
    """One simulated volunteer (volunteer01) against many callers: callers wait, are
    offered a callback at once, and all of them take it."""
    hotline: Hotline = await hotline_factory(
        simulate=True,
        sim_seed=7,
        sim_rate_per_minute=90,
        sim_spike_every_seconds=0,
        sim_talk_seconds=1.0,
        sim_wrapup_seconds=0.2,
        sim_patience_seconds=60.0,
        sim_agent_prefix="volunteer01",
        sim_callback_accept=1.0,
        sim_dial_answer=dial_answer,
    )
    campaign_id = await seed_demo(hotline.db)
    queues = (await hotline.http.get(f"/queues?campaign_id={campaign_id}")).json()
    pledges = next(q for q in queues if q["name"] == "pledges")
    r = await hotline.http.patch(
        f"/queues/{pledges['id']}",
        json={"callback_offer_seconds": 0, "callback_retries": 0},
    )
    assert r.status_code == 200, r.text
    return hotline


async def test_simulated_callers_take_callbacks_and_answer_the_dial(hotline_factory: Any) -> None:
    hotline = await _simulated_callbacks(hotline_factory, dial_answer=1.0)

    async def a_callback_completed() -> bool:
        rows = await hotline.sql(
            "select count(*) from calls where kind = 'callback' and state = 'completed'"
        )
        return rows[0][0] >= 1

    await wait_for(a_callback_completed, timeout=45)
    requested = await hotline.sql(
        "select count(*) from calls where kind = 'inbound' and state = 'callback_requested'"
    )
    assert requested[0][0] >= 1
    # Every completed callback was dialled and answered by the (simulated) caller.
    unanswered = await hotline.sql("select count(*) from events where type = 'callback.unanswered'")
    assert unanswered == [(0,)]
    dials = await hotline.sql("select count(*) from telephony_commands where command = 'dial'")
    assert dials[0][0] >= 1


async def test_simulated_callers_who_never_answer_fail_their_callbacks(
    hotline_factory: Any,
) -> None:
    hotline = await _simulated_callbacks(hotline_factory, dial_answer=0.0)

    async def a_callback_failed() -> bool:
        rows = await hotline.sql(
            "select count(*) from calls where kind = 'callback' and state = 'failed'"
        )
        return rows[0][0] >= 1

    await wait_for(a_callback_failed, timeout=45)
    completed = await hotline.sql(
        "select count(*) from calls where kind = 'callback' and state = 'completed'"
    )
    assert completed == [(0,)]
    alerts = await hotline.sql(
        "select count(*) from events where type = 'supervisor.alert'"
        " and cast(data as text) like '%callback_failed%'"
    )
    assert alerts[0][0] >= 1
