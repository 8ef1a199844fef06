"""Erlang B and Erlang C: the M/M/N queue's figures, as pure functions.

A call centre with ``N`` seats, calls arriving at random (Poisson) and handled in
an exponentially distributed time of mean ``h`` (talk + wrap-up) is the M/M/N
queue. With the offered load ``A = λ·h`` in erlangs (λ the arrival rate):

* Erlang B, the blocking probability of N seats without a queue, by the recursion
  ``B(0) = 1``, ``B(n) = A·B(n-1) / (n + A·B(n-1))``: every step is a ratio of
  numbers below ``n + A``, so neither factorials nor powers of A overflow
  (A = 5000 erlangs on 5100 seats is fine), and each step loses no precision.
* Erlang C, the probability that a caller waits (all N seats busy when the call
  arrives): ``C = N·B / (N - A·(1 - B))`` when ``A < N``; when ``A ≥ N`` the
  queue grows without bound and every caller waits (``C = 1``).
* Service level, the share of callers answered within ``t`` seconds:
  ``SL(t) = 1 - C·exp(-(N - A)·t / h)``.
* Average speed of answer (the mean wait of all callers, those answered at once
  included): ``ASA = C·h / (N - A)``; infinite when ``A ≥ N``.

``seats_needed`` is the smallest N meeting a service-level target and a maximum
average wait. docs/surge.md ("The staffing planner") gives the derivations' sources.
"""

from __future__ import annotations

import math

# Beyond this many seats a target is not met by planning but by a different show:
# ``seats_needed`` stops searching there (and says so by raising). It also bounds
# the work: Erlang B's recursion takes one step per seat.
MAX_SEATS = 20_000


def _check_load(load: float) -> None:
    if not (math.isfinite(load) and load >= 0):
        raise ValueError(f"offered load must be a finite number >= 0, not {load!r}")


def _check_seats(seats: int) -> None:
    if seats < 0:
        raise ValueError(f"seats must be >= 0, not {seats!r}")


def offered_load(calls: float, period_seconds: float, handle_seconds: float) -> float:
    """Erlangs offered by ``calls`` arriving in ``period_seconds``, each held ``handle_seconds``."""
    if period_seconds <= 0:
        raise ValueError("the period must be longer than 0 seconds")
    if calls < 0 or handle_seconds < 0:
        raise ValueError("calls and handle time must be >= 0")
    return calls / period_seconds * handle_seconds


def erlang_b(load: float, seats: int) -> float:
    """Blocking probability of ``seats`` servers without a waiting room (Erlang B)."""
    _check_load(load)
    _check_seats(seats)
    if seats > MAX_SEATS:
        raise ValueError(f"more than {MAX_SEATS} seats")
    blocking = 1.0
    for n in range(1, seats + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def erlang_c(load: float, seats: int) -> float:
    """Probability that a caller waits (Erlang C); 1.0 when the load reaches the seats."""
    _check_load(load)
    _check_seats(seats)
    if load == 0:
        return 0.0
    if load >= seats:
        return 1.0
    blocking = erlang_b(load, seats)
    return seats * blocking / (seats - load * (1.0 - blocking))


def service_level(
    load: float, seats: int, handle_seconds: float, threshold_seconds: float
) -> float:
    """Share of callers answered within ``threshold_seconds``; 0.0 when the load reaches
    the seats (the queue grows without bound, waits with it)."""
    if handle_seconds <= 0:
        raise ValueError("the handle time must be longer than 0 seconds")
    if threshold_seconds < 0:
        raise ValueError("the threshold must be >= 0 seconds")
    waits = erlang_c(load, seats)
    if waits == 0.0:
        return 1.0
    if load >= seats:
        return 0.0
    return max(0.0, 1.0 - waits * math.exp(-(seats - load) * threshold_seconds / handle_seconds))


def average_wait(load: float, seats: int, handle_seconds: float) -> float:
    """Average speed of answer in seconds (all callers); ``math.inf`` when the load
    reaches the seats."""
    if handle_seconds <= 0:
        raise ValueError("the handle time must be longer than 0 seconds")
    waits = erlang_c(load, seats)
    if waits == 0.0:
        return 0.0
    if load >= seats:
        return math.inf
    return waits * handle_seconds / (seats - load)


def _erlang_c_from_b(load: float, seats: int, blocking: float) -> float:
    return seats * blocking / (seats - load * (1.0 - blocking))


def seats_needed(
    load: float,
    handle_seconds: float,
    *,
    target: float,
    threshold_seconds: float,
    max_average_wait: float | None = None,
) -> int:
    """The fewest seats giving a service level of at least ``target`` within
    ``threshold_seconds`` and, when given, an average wait of at most
    ``max_average_wait`` seconds. No load needs no seat.

    The search starts at the first N above the load (fewer never hold the queue)
    and goes up one seat at a time, carrying Erlang B's recursion along: both
    figures improve with every seat (C falls and N - A grows), so the first N that
    meets them is the answer, and since both approach their limits exponentially
    in N - A the search is short. Raises ``ValueError`` for a target of 1 or more
    or a maximum wait of 0 (no finite N makes every caller answered at once), or
    beyond :data:`MAX_SEATS`.
    """
    _check_load(load)
    if not 0 <= target < 1:
        raise ValueError("the service-level target must be at least 0 and below 1")
    if max_average_wait is not None and not max_average_wait > 0:
        raise ValueError("the maximum average wait must be longer than 0 seconds")
    if handle_seconds <= 0:
        raise ValueError("the handle time must be longer than 0 seconds")
    if threshold_seconds < 0:
        raise ValueError("the threshold must be >= 0 seconds")
    if load == 0:
        return 0
    seats = math.floor(load) + 1
    if seats > MAX_SEATS:
        raise ValueError(f"more than {MAX_SEATS} seats would be needed")
    blocking = erlang_b(load, seats)
    while seats <= MAX_SEATS:
        waits = _erlang_c_from_b(load, seats, blocking)
        spare = seats - load
        level = 1.0 - waits * math.exp(-spare * threshold_seconds / handle_seconds)
        wait = waits * handle_seconds / spare
        if level >= target and (max_average_wait is None or wait <= max_average_wait):
            return seats
        seats += 1
        blocking = load * blocking / (seats + load * blocking)
    raise ValueError(f"more than {MAX_SEATS} seats would be needed")
