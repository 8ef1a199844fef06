"""Reverse-directory client: one look-up per caller number, within a time budget.

The contract is in docs/directory.md. A look-up never raises (except
``asyncio.CancelledError``, when the caller cancels it): it returns a
:class:`DirectoryResult` whose ``status`` says what happened.

What protects the call path from a slow or broken directory:

* **Budget.** Each look-up waits under ``asyncio.timeout(budget)`` for the HTTP
  request, the body and its parsing together (a free connection included). There
  is no retry: a retry could only be spent beyond the budget, when the agent is
  already talking. The request itself is shielded: at the budget the caller gets
  ``timeout`` while the request may finish (within httpx's backstop timeout of
  4 x budget, at least 1 s), which keeps its connection usable; a late answer is
  cached.
* **Cache.** Hits and misses are kept (separate TTLs) in a bounded LRU map keyed
  by E.164 number, so a repeat caller costs no request. Failures are not cached.
* **Circuit breaker.** After ``failures`` failures in a row (timeouts and errors;
  a "not found" is a success) the breaker opens: look-ups answer
  ``breaker_open`` at once for ``reset`` seconds. Then one look-up is let through
  as a probe (half-open); its success closes the breaker, its failure reopens it.

Counters and a latency histogram are kept per process (:meth:`DirectoryClient.metrics`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.settings import Settings

log = logging.getLogger(__name__)

# Largest response body accepted from the directory; a bigger one is "malformed".
MAX_BODY_BYTES = 64 * 1024
# Longest text kept from one field of an answer (names, address lines, email).
MAX_FIELD_CHARS = 200
# Histogram bucket upper bounds, milliseconds (cumulative, as Prometheus has them).
LATENCY_BUCKETS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2500.0)
# Recent latencies kept for percentiles.
LATENCY_SAMPLES = 2048


class Status(enum.StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    SKIPPED_WITHHELD = "skipped_withheld"
    SKIPPED_INVALID = "skipped_invalid"
    TIMEOUT = "timeout"
    ERROR = "error"
    BREAKER_OPEN = "breaker_open"
    DISABLED = "disabled"  # no directory configured (PLEDGELINE_DIRECTORY_URL empty)


class ErrorKind(enum.StrEnum):
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"  # 401/403 (token), 400, 429...: anything but 200 and 404
    CONNECT = "connect"  # could not connect (refused, DNS, TLS)
    NETWORK = "network"  # the connection broke during the exchange
    MALFORMED = "malformed"  # not JSON, wrong shape, wrong number, too large
    CONTENT_TYPE = "content_type"  # a 200 that is not application/json
    INTERNAL = "internal"  # a bug on our side; logged with its traceback


@dataclass(frozen=True)
class DirectoryResult:
    """The answer to one look-up. Fields are filled only when ``status`` is found."""

    status: Status
    number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address_lines: tuple[str, ...] = ()
    postcode: str | None = None
    city: str | None = None
    email: str | None = None
    error_kind: ErrorKind | None = None
    cached: bool = False
    latency_ms: float = 0.0

    @property
    def found(self) -> bool:
        return self.status is Status.FOUND

    @property
    def has_address(self) -> bool:
        return bool(self.address_lines or self.postcode or self.city)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "number": self.number,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "address_lines": list(self.address_lines),
            "postcode": self.postcode,
            "city": self.city,
            "email": self.email,
            "error_kind": str(self.error_kind) if self.error_kind else None,
            "cached": self.cached,
            "latency_ms": round(self.latency_ms, 3),
        }


class _Failure(Exception):
    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# --- parsing the answer -------------------------------------------------------------


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _Failure(ErrorKind.MALFORMED, f"{where} missing")
        return None
    if not isinstance(value, str):
        raise _Failure(ErrorKind.MALFORMED, f"{where} is not a string")
    value = " ".join(value.split())[:MAX_FIELD_CHARS]
    if required and not value:
        raise _Failure(ErrorKind.MALFORMED, f"{where} empty")
    return value or None


def parse_answer(number: str, payload: Any) -> DirectoryResult:
    """A 200 body (already decoded JSON) as a result; raises ``_Failure`` when malformed."""
    if not isinstance(payload, dict):
        raise _Failure(ErrorKind.MALFORMED, "answer is not a JSON object")
    found = payload.get("found")
    if not isinstance(found, bool):
        raise _Failure(ErrorKind.MALFORMED, "found is not a boolean")
    echoed = payload.get("number")
    if echoed is not None and echoed != number:
        # Never pop someone else's details.
        raise _Failure(ErrorKind.MALFORMED, "answer is for another number")
    if not found:
        return DirectoryResult(Status.NOT_FOUND, number=number)
    name = payload.get("name")
    if not isinstance(name, dict):
        raise _Failure(ErrorKind.MALFORMED, "name is not an object")
    first = _text(name.get("first"), "name.first")
    last = _text(name.get("last"), "name.last")
    if first is None and last is None:
        raise _Failure(ErrorKind.MALFORMED, "name is empty")
    address = payload.get("address")
    lines: tuple[str, ...] = ()
    postcode = city = None
    if address is not None:
        if not isinstance(address, dict):
            raise _Failure(ErrorKind.MALFORMED, "address is not an object")
        raw_lines = address.get("lines", [])
        if not isinstance(raw_lines, list) or len(raw_lines) > 6:
            raise _Failure(ErrorKind.MALFORMED, "address.lines is not a short list")
        lines = tuple(
            line
            for line in (_text(item, "address.lines[]", required=True) for item in raw_lines)
            if line
        )
        postcode = _text(address.get("postcode"), "address.postcode")
        city = _text(address.get("city"), "address.city")
    email = _text(payload.get("email"), "email")
    if email is not None and "@" not in email:
        email = None  # an unusable e-mail is dropped, not a reason to lose the rest
    return DirectoryResult(
        Status.FOUND,
        number=number,
        first_name=first,
        last_name=last,
        address_lines=lines,
        postcode=postcode,
        city=city,
        email=email,
    )


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


# --- cache --------------------------------------------------------------------------


class TTLCache:
    """Results by number, each with its expiry; least recently used dropped beyond ``size``."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self.size = max(0, size)
        self._clock = clock
        self._items: collections.OrderedDict[str, tuple[float, DirectoryResult]] = (
            collections.OrderedDict()
        )

    def get(self, number: str) -> DirectoryResult | None:
        item = self._items.get(number)
        if item is None:
            return None
        expires, result = item
        if self._clock() >= expires:
            del self._items[number]
            return None
        self._items.move_to_end(number)
        return result

    def put(self, number: str, result: DirectoryResult, ttl: float) -> None:
        if self.size == 0 or ttl <= 0:
            return
        self._items[number] = (self._clock() + ttl, result)
        self._items.move_to_end(number)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# --- circuit breaker ----------------------------------------------------------------


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with one half-open probe at a time."""

    def __init__(self, failures: int, reset_seconds: float, clock: Callable[[], float]) -> None:
        self.threshold = max(1, failures)
        self.reset_seconds = reset_seconds
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.opens = 0
        self._probe_out = False

    def allow(self) -> bool:
        """May a request go out now? In half-open, only the one probe may."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self._clock() - self.opened_at < self.reset_seconds:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def success(self) -> None:
        self.consecutive_failures = 0
        self._probe_out = False
        self.state = BreakerState.CLOSED

    def failure(self) -> None:
        self.consecutive_failures += 1
        half_open_probe_failed = self.state is BreakerState.HALF_OPEN
        too_many = self.state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold
        if half_open_probe_failed or too_many:
            self._open()

    def abandon(self) -> None:
        """A request let through was cancelled: it proved nothing either way."""
        if self.state is BreakerState.HALF_OPEN:
            self._probe_out = False

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self._clock()
        self._probe_out = False
        self.opens += 1


# --- latency ------------------------------------------------------------------------


@dataclass
class LatencyStats:
    """A fixed-bucket histogram (for a Prometheus export) plus recent samples (percentiles)."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    count: int = 0
    total_ms: float = 0.0
    recent: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_SAMPLES)
    )

    def observe(self, ms: float) -> None:
        self.count += 1
        self.total_ms += ms
        self.recent.append(ms)
        for i, bound in enumerate(LATENCY_BUCKETS_MS):
            if ms <= bound:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def snapshot(self) -> dict[str, Any]:
        cumulative: dict[str, int] = {}
        running = 0
        for bound, n in zip((*LATENCY_BUCKETS_MS, float("inf")), self.buckets, strict=True):
            running += n
            cumulative["+Inf" if bound == float("inf") else f"{bound:g}"] = running
        ordered = sorted(self.recent)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

        return {
            "count": self.count,
            "sum_ms": round(self.total_ms, 3),
            "buckets": cumulative,
            "recent_samples": len(ordered),
            "p50": pct(0.50),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "max": round(ordered[-1], 3) if ordered else None,
        }


# --- the client ---------------------------------------------------------------------


class DirectoryClient:
    """One per process: a shared HTTP client, the cache, the breaker and the counters."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        budget_ms: int = 300,
        cache_ttl_seconds: float = 3600.0,
        miss_ttl_seconds: float = 300.0,
        cache_size: int = 10000,
        breaker_failures: int = 5,
        breaker_reset_seconds: float = 30.0,
        max_connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.enabled = bool(self.base_url)
        self.budget = budget_ms / 1000.0
        self.hit_ttl = cache_ttl_seconds
        self.miss_ttl = miss_ttl_seconds
        self._token = token
        self._max_connections = max(1, max_connections)
        self._transport = transport
        self._clock = clock
        self.cache = TTLCache(cache_size, clock)
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_seconds, clock)
        self.latency = LatencyStats()
        self.counts: collections.Counter[str] = collections.Counter()
        self.error_counts: collections.Counter[str] = collections.Counter(
            {kind.value: 0 for kind in ErrorKind}
        )
        self._http: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Future[DirectoryResult]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> DirectoryClient:
        return cls(
            settings.directory_url,
            token=settings.directory_token,
            budget_ms=settings.directory_budget_ms,
            cache_ttl_seconds=settings.directory_cache_ttl_seconds,
            miss_ttl_seconds=settings.directory_miss_ttl_seconds,
            cache_size=settings.directory_cache_size,
            breaker_failures=settings.directory_breaker_failures,
            breaker_reset_seconds=settings.directory_breaker_reset_seconds,
            max_connections=settings.directory_max_connections,
            **kwargs,
        )

    # lifecycle

    async def start(self) -> None:
        if self._http is None and self.enabled:
            headers = {"Accept": "application/json", "User-Agent": "pledgeline-cti"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            # httpx's own timeouts are a backstop only: asyncio.timeout enforces the budget.
            backstop = max(1.0, self.budget * 4)
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(backstop),
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                    keepalive_expiry=20.0,
                ),
                transport=self._transport,
                follow_redirects=False,
            )

    async def aclose(self) -> None:
        pending = list(self._in_flight)
        for request in pending:
            request.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # look-ups

    async def lookup(self, e164: str | None, issue: str | None = None) -> DirectoryResult:
        """Look ``e164`` up; ``issue`` (withheld, invalid) explains a missing number."""
        self.counts["lookups"] += 1
        try:
            return await self._lookup(e164, issue)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug of ours must not reach the call path
            log.exception("directory look-up failed unexpectedly")
            return self._error(ErrorKind.INTERNAL, e164, 0.0)

    async def _lookup(self, e164: str | None, issue: str | None) -> DirectoryResult:
        if not e164:
            status = Status.SKIPPED_WITHHELD if issue == "withheld" else Status.SKIPPED_INVALID
            self.counts[status.value] += 1
            return DirectoryResult(status)
        if not e164.startswith("+") or not e164[1:].isdigit() or len(e164) > 16:
            self.counts[Status.SKIPPED_INVALID.value] += 1
            return DirectoryResult(Status.SKIPPED_INVALID)
        if not self.enabled:
            self.counts[Status.DISABLED.value] += 1
            return DirectoryResult(Status.DISABLED, number=e164)
        cached = self.cache.get(e164)
        if cached is not None:
            self.counts["cache_hits"] += 1
            return dataclasses.replace(cached, cached=True, latency_ms=0.0)
        if not self.breaker.allow():
            self.counts["breaker_rejections"] += 1
            return DirectoryResult(Status.BREAKER_OPEN, number=e164)
        if self._http is None:
            await self.start()
        started = time.perf_counter()
        # The request runs as its own task, shielded from the budget: at the budget the
        # caller gets "timeout", and the request may still finish (until httpx's backstop
        # timeout). Cancelling it instead would close its connection, and the reconnect
        # (a TLS handshake, in production) would make the next look-up slower still.
        # A late answer goes into the cache.
        request = asyncio.ensure_future(self._request(e164))
        self._in_flight.add(request)
        request.add_done_callback(self._in_flight.discard)
        try:
            async with asyncio.timeout(self.budget):
                result = await asyncio.shield(request)
        except asyncio.CancelledError:
            self.breaker.abandon()
            request.add_done_callback(functools.partial(self._late, e164))
            raise
        except (TimeoutError, httpx.TimeoutException):
            if not request.done():
                request.add_done_callback(functools.partial(self._late, e164))
            elapsed = (time.perf_counter() - started) * 1000
            self.latency.observe(elapsed)
            self.counts["timeouts"] += 1
            self.breaker.failure()
            return DirectoryResult(Status.TIMEOUT, number=e164, latency_ms=elapsed)
        except _Failure as failure:
            elapsed = (time.perf_counter() - started) * 1000
            self.latency.observe(elapsed)
            self.breaker.failure()
            log.warning("directory error %s: %s", failure.kind.value, failure)
            return self._error(failure.kind, e164, elapsed)
        except Exception:
            self.breaker.failure()
            raise
        elapsed = (time.perf_counter() - started) * 1000
        self.latency.observe(elapsed)
        self.breaker.success()
        result = dataclasses.replace(result, latency_ms=elapsed)
        if result.found:
            self.counts["hits"] += 1
            self.cache.put(e164, result, self.hit_ttl)
        else:
            self.counts["misses"] += 1
            self.cache.put(e164, result, self.miss_ttl)
        return result

    def _late(self, e164: str, request: asyncio.Future[DirectoryResult]) -> None:
        """A request that outlived its look-up's budget has ended: keep a good answer."""
        if request.cancelled():
            return
        if request.exception() is not None:  # retrieved, so never "never retrieved"
            self.counts["late_failures"] += 1
            return
        result = request.result()
        self.counts["late_answers"] += 1
        self.cache.put(e164, result, self.hit_ttl if result.found else self.miss_ttl)

    def _error(self, kind: ErrorKind, e164: str | None, elapsed: float) -> DirectoryResult:
        self.counts["errors"] += 1
        self.error_counts[kind.value] += 1
        return DirectoryResult(Status.ERROR, number=e164, error_kind=kind, latency_ms=elapsed)

    async def _request(self, e164: str) -> DirectoryResult:
        assert self._http is not None
        try:
            async with self._http.stream("GET", "/lookup", params={"number": e164}) as response:
                # Read the body whatever the status: a connection whose answer was
                # left unread cannot be reused, and reconnecting costs more than reading.
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise _Failure(ErrorKind.MALFORMED, "answer too large")
        except httpx.TimeoutException:
            raise
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise _Failure(ErrorKind.CONNECT, type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise _Failure(ErrorKind.NETWORK, type(exc).__name__) from exc
        if response.status_code == 404:
            return DirectoryResult(Status.NOT_FOUND, number=e164)
        if response.status_code >= 500:
            raise _Failure(ErrorKind.HTTP_5XX, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise _Failure(ErrorKind.HTTP_4XX, f"HTTP {response.status_code}")
        content_type = response.headers.get("content-type")
        if not _is_json(content_type):
            raise _Failure(ErrorKind.CONTENT_TYPE, f"content type {content_type!r}")
        try:
            payload = json.loads(bytes(body))
        except (ValueError, RecursionError) as exc:
            raise _Failure(ErrorKind.MALFORMED, "answer is not JSON") from exc
        return parse_answer(e164, payload)

    # figures

    def metrics(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "enabled": self.enabled,
            "lookups": counts["lookups"],
            "hits": counts["hits"],
            "misses": counts["misses"],
            "cache_hits": counts["cache_hits"],
            "skipped_withheld": counts[Status.SKIPPED_WITHHELD.value],
            "skipped_invalid": counts[Status.SKIPPED_INVALID.value],
            "disabled": counts[Status.DISABLED.value],
            "timeouts": counts["timeouts"],
            "errors": counts["errors"],
            "errors_by_kind": dict(self.error_counts),
            "late_answers": counts["late_answers"],
            "late_failures": counts["late_failures"],
            "in_flight": len(self._in_flight),
            "breaker_state": str(self.breaker.state),
            "breaker_opens": self.breaker.opens,
            "breaker_rejections": counts["breaker_rejections"],
            "cache_entries": len(self.cache),
            "latency_ms": self.latency.snapshot(),
        }
