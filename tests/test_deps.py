"""What every request pays before its handler runs: dependencies and route matching.

A plain ``def`` dependency is run by FastAPI in its thread pool (a thread hop per
request for an attribute read), and routes are matched one pattern at a time in
the order the routers were included (about 8 microseconds a pattern with
FastAPI's included routers). Both are per-request costs of the call path.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from starlette.routing import Match

from app.main import create_app
from tests.conftest import make_settings

# The requests of every call (the platform's webhook, three a call) and of the
# pledge intake: matched among the first patterns, not behind the whole API.
BUSY_REQUESTS = [("POST", "/telephony/events"), ("POST", "/pledges")]
MOST_PATTERNS_BEFORE_A_BUSY_ROUTE = 16


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    path = Path(tmp_path_factory.mktemp("deps")) / "unused.db"
    return create_app(make_settings(f"sqlite:///{path}"))


def _patterns(route: Any) -> list[Any]:
    """The route's own patterns, those of an included router's routes included."""
    inner = getattr(route, "original_router", None)
    if inner is None:
        return [route]
    return [p for child in inner.routes for p in _patterns(child)]


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def _scope(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "app": app,
    }


def test_no_dependency_runs_in_the_thread_pool(app: FastAPI) -> None:
    sync = sorted(
        {
            f"{route.path}: {sub.call.__module__}.{getattr(sub.call, '__qualname__', sub.call)}"
            for top in app.router.routes
            for route in _patterns(top)
            if getattr(route, "dependant", None) is not None
            for sub in _dependants(route.dependant)
            if sub.call is not None
            and not inspect.iscoroutinefunction(sub.call)
            and not inspect.isasyncgenfunction(sub.call)
        }
    )
    assert sync == [], "plain def dependencies (run in the thread pool):\n" + "\n".join(sync)


@pytest.mark.parametrize(("method", "path"), BUSY_REQUESTS)
def test_the_busiest_routes_are_matched_first(app: FastAPI, method: str, path: str) -> None:
    scope = _scope(app, method, path)
    tried = 0
    for top in app.router.routes:
        match, _ = top.matches(scope)
        if match == Match.FULL:
            break
        tried += len(_patterns(top))
    else:
        pytest.fail(f"no route for {method} {path}")
    assert tried <= MOST_PATTERNS_BEFORE_A_BUSY_ROUTE, (
        f"{method} {path} is matched after {tried} other patterns"
    )
