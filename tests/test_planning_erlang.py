"""Erlang B and C (app/planning/erlang.py) against published tables, an exact
independent computation, and the properties the planner relies on."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning import erlang


def exact_erlang_c(load: Fraction, seats: int) -> Fraction:
    """Erlang C straight from its textbook form, in exact rational arithmetic:
    C = (A^N/N! · N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! · N/(N-A)).
    Independent of the module's Erlang B recursion (no shared step)."""
    top = load**seats / math.factorial(seats) * Fraction(seats) / (seats - load)
    below = sum(load**k / math.factorial(k) for k in range(seats))
    return top / (below + top)


def log_space_erlang_c(load: float, seats: int) -> float:
    """Erlang C for large figures from logarithms (lgamma, log-sum-exp): a second
    independent computation where factorials overflow a float."""
    logs = [k * math.log(load) - math.lgamma(k + 1) for k in range(seats)]
    top = seats * math.log(load) - math.lgamma(seats + 1) + math.log(seats / (seats - load))
    peak = max(*logs, top)
    below = sum(math.exp(v - peak) for v in logs)
    return math.exp(top - peak) / (below + math.exp(top - peak))


# Published Erlang C values (probability of waiting), as printed in call-centre
# planning tables and the usual worked example (10 erlangs: 100 calls of 180 s in
# 30 minutes). Each is also checked against the exact computation above.
ERLANG_C_TABLE = [
    # (erlangs, seats, P(wait) to 4 decimals)
    (2, 3, 0.4444),  # = 4/9 exactly: B(2,3) = 4/19, C = 3·(4/19) / (3 - 2·15/19) = 12/27
    (1, 2, 0.3333),  # = 1/3: B(1,2) = 1/5, C = 2·(1/5) / (2 - 4/5)
    (10, 11, 0.6821),
    (10, 12, 0.4494),
    (10, 13, 0.2853),
    (10, 14, 0.1741),
    (10, 15, 0.1020),
]

# Erlang B tables: the load N trunks carry at a given blocking (grade of service).
ERLANG_B_TABLE = [
    # (seats, erlangs, blocking)
    (5, 1.361, 0.01),
    (10, 4.461, 0.01),
    (10, 7.511, 0.10),
    (20, 12.031, 0.01),
    (50, 37.901, 0.01),
    (100, 84.064, 0.01),
]


@pytest.mark.parametrize(("load", "seats", "published"), ERLANG_C_TABLE)
def test_erlang_c_matches_published_tables(load: int, seats: int, published: float) -> None:
    assert erlang.erlang_c(load, seats) == pytest.approx(published, abs=5e-5)
    assert erlang.erlang_c(load, seats) == pytest.approx(
        float(exact_erlang_c(Fraction(load), seats)), rel=1e-12
    )


def test_exact_small_cases() -> None:
    assert erlang.erlang_c(2, 3) == pytest.approx(4 / 9, rel=1e-14)
    assert erlang.erlang_c(1, 2) == pytest.approx(1 / 3, rel=1e-14)
    assert erlang.erlang_b(2, 3) == pytest.approx(4 / 19, rel=1e-14)
    # A single seat is M/M/1: P(wait) = utilisation.
    assert erlang.erlang_c(0.3, 1) == pytest.approx(0.3, rel=1e-14)


@pytest.mark.parametrize(("seats", "load", "blocking"), ERLANG_B_TABLE)
def test_erlang_b_matches_published_tables(seats: int, load: float, blocking: float) -> None:
    # Tables print the load to 3 decimals: the blocking it gives is within 0.1 % of it.
    assert erlang.erlang_b(load, seats) == pytest.approx(blocking, rel=2e-3)


def test_worked_example_service_level_and_average_wait() -> None:
    """100 calls in 30 minutes, 180 s each: 10 erlangs; target 80 % within 20 s."""
    load = erlang.offered_load(100, 1800, 180)
    assert load == pytest.approx(10.0)
    # With 11 seats: ASA = 0.6821 · 180 / (11 - 10) = 122.8 s;
    # SL = 1 - 0.6821 · e^(-(11 - 10) · 20/180) = 1 - 0.6821 · 0.89484 = 0.3896.
    assert erlang.average_wait(load, 11, 180) == pytest.approx(122.8, abs=0.05)
    assert erlang.service_level(load, 11, 180, 20) == pytest.approx(0.3896, abs=5e-4)
    # 13 seats: SL = 1 - 0.2853 · e^(-3·20/180) = 0.7956, short of 80 %; 14: 0.8884.
    assert erlang.service_level(load, 13, 180, 20) == pytest.approx(0.7956, abs=5e-4)
    assert erlang.service_level(load, 14, 180, 20) == pytest.approx(0.8884, abs=5e-4)
    assert erlang.seats_needed(load, 180, target=0.8, threshold_seconds=20) == 14
    # A maximum average wait of 5 s asks for one more: ASA(14) = 7.8 s, ASA(15) = 3.7 s.
    assert (
        erlang.seats_needed(load, 180, target=0.8, threshold_seconds=20, max_average_wait=5) == 15
    )


def test_large_loads_stay_finite_and_exact() -> None:
    # 5000 erlangs: A^N/N! overflows any float; the recursion does not.
    for load, seats in ((500.0, 520), (5000.0, 5100), (5000.0, 5050), (15000.0, 15100)):
        value = erlang.erlang_c(load, seats)
        assert 0 < value < 1
        assert value == pytest.approx(log_space_erlang_c(load, seats), rel=1e-9)


def test_overload_and_empty_cases() -> None:
    assert erlang.erlang_c(0, 0) == 0.0
    assert erlang.erlang_c(0, 5) == 0.0
    assert erlang.erlang_c(5, 5) == 1.0
    assert erlang.erlang_c(7.5, 5) == 1.0
    assert erlang.service_level(7.5, 5, 180, 20) == 0.0
    assert erlang.average_wait(5, 5, 180) == math.inf
    assert erlang.service_level(0, 0, 180, 20) == 1.0
    assert erlang.average_wait(0, 0, 180) == 0.0
    assert erlang.seats_needed(0, 180, target=0.8, threshold_seconds=20) == 0
    # A tiny load still needs one seat.
    assert erlang.seats_needed(0.01, 180, target=0.8, threshold_seconds=20) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": 1.0, "threshold_seconds": 20},
        {"target": -0.1, "threshold_seconds": 20},
        {"target": 0.8, "threshold_seconds": -1},
        {"target": 0.8, "threshold_seconds": 20, "max_average_wait": 0},
    ],
)
def test_impossible_targets_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        erlang.seats_needed(10, 180, **kwargs)  # type: ignore[arg-type]


def test_bad_figures_are_refused() -> None:
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            erlang.erlang_c(bad, 3)
    with pytest.raises(ValueError):
        erlang.erlang_b(1, -1)
    with pytest.raises(ValueError):
        erlang.seats_needed(erlang.MAX_SEATS + 1.0, 180, target=0.8, threshold_seconds=20)
    with pytest.raises(ValueError):
        erlang.offered_load(10, 0, 180)


loads = st.floats(min_value=0.01, max_value=200, allow_nan=False)
handles = st.floats(min_value=1, max_value=3600, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(load=st.fractions(min_value=Fraction(1, 100), max_value=40), extra=st.integers(1, 15))
def test_erlang_c_equals_the_exact_formula(load: Fraction, extra: int) -> None:
    seats = math.floor(load) + extra
    assert erlang.erlang_c(float(load), seats) == pytest.approx(
        float(exact_erlang_c(load, seats)), rel=1e-9, abs=1e-300
    )


@settings(max_examples=200, deadline=None)
@given(load=loads, extra=st.integers(0, 30))
def test_more_seats_never_make_things_worse(load: float, extra: int) -> None:
    seats = math.floor(load) + 1 + extra
    assert erlang.erlang_c(load, seats + 1) <= erlang.erlang_c(load, seats)
    assert erlang.erlang_b(load, seats + 1) <= erlang.erlang_b(load, seats)
    assert erlang.service_level(load, seats + 1, 180, 20) >= erlang.service_level(
        load, seats, 180, 20
    )
    assert erlang.average_wait(load, seats + 1, 180) <= erlang.average_wait(load, seats, 180)
    assert 0 <= erlang.erlang_b(load, seats) <= erlang.erlang_c(load, seats) <= 1


@settings(max_examples=200, deadline=None)
@given(load=loads, more=st.floats(min_value=0, max_value=10), extra=st.integers(1, 30))
def test_more_load_means_more_waiting(load: float, more: float, extra: int) -> None:
    seats = math.floor(load + more) + extra
    assert erlang.erlang_c(load + more, seats) >= erlang.erlang_c(load, seats)


@settings(max_examples=200, deadline=None)
@given(
    load=loads,
    handle=handles,
    target=st.floats(min_value=0, max_value=0.99),
    threshold=st.floats(min_value=0, max_value=300),
    max_wait=st.none() | st.floats(min_value=0.5, max_value=600),
)
def test_seats_needed_is_the_fewest_that_meet_the_targets(
    load: float, handle: float, target: float, threshold: float, max_wait: float | None
) -> None:
    seats = erlang.seats_needed(
        load, handle, target=target, threshold_seconds=threshold, max_average_wait=max_wait
    )

    def meets(n: int) -> bool:
        good = erlang.service_level(load, n, handle, threshold) >= target
        short = max_wait is None or erlang.average_wait(load, n, handle) <= max_wait
        return good and short

    assert seats > load
    assert meets(seats)
    # One seat fewer misses a target, or cannot hold the queue at all (load >= seats:
    # never a plan, even when a target of 0 would count it as met).
    assert seats - 1 <= load or not meets(seats - 1)
    # A stricter target never needs fewer seats; more load never needs fewer.
    stricter = erlang.seats_needed(
        load, handle, target=min(0.995, target + 0.05), threshold_seconds=threshold
    )
    assert stricter >= erlang.seats_needed(load, handle, target=target, threshold_seconds=threshold)
    assert erlang.seats_needed(
        load * 1.5, handle, target=target, threshold_seconds=threshold
    ) >= erlang.seats_needed(load, handle, target=target, threshold_seconds=threshold)
