"""Whole numbers the database can hold: every request is checked before its route runs.

Ids, amounts and counts are 64-bit signed integers in both databases. Python's
``int`` and pydantic's have no limit, so ``/campaigns/9223372036854775808`` used
to reach the driver, which raised (``OverflowError`` on SQLite, ``DataError`` on
PostgreSQL): a 500, on routes reachable without a login. Rather than annotate
every ``int`` of every route, one app-wide dependency, ``refuse_int64_overflow``,
looks at the route the request reached and refuses, with the usual 422
``{code, message, field}`` naming the field:

* a path or query parameter declared as an ``int`` (alone, optional or a list, in
  the endpoint or in one of its dependencies) whose value is a whole number
  outside ``[-2**63, 2**63 - 1]``;
* a JSON body holding, anywhere, an integer outside that range (whatever the field
  is declared as: no field of this API takes one). The body is scanned for a run
  of 19 digits first, so an ordinary body costs one regular-expression search.

The check runs before the route's own dependencies, authentication included: the
answer reveals nothing but that the number is too large. Values that are not
whole numbers at all are left to FastAPI's own validation. Routes that read their
body themselves (the signed telephony and payment webhooks) are not seen here:
``first_out_of_range`` is for them.
"""

from __future__ import annotations

import contextlib
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import HTTPConnection, Request

from app.cardguard import check_value
from app.errors import Invalid

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Any integer outside the range has at least 19 digits (2**63 has 19).
_LONG_NUMBER = re.compile(rb"\d{19}")
_LAX_INT: TypeAdapter[int] = TypeAdapter(int)


def in_range(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def _holds_int(annotation: Any) -> bool:
    """``int``, ``int | None``, ``list[int]``, ``Annotated[int, ...]``... (not bool)."""
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin is None:
        return False
    if origin is typing.Annotated:
        return _holds_int(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return any(_holds_int(arg) for arg in typing.get_args(annotation))
    return False


@dataclass(frozen=True)
class _IntParams:
    path: tuple[str, ...]
    query: tuple[str, ...]
    json_body: bool

    def __bool__(self) -> bool:
        return bool(self.path or self.query or self.json_body)


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    """The route's own parameters and its dependencies', all the way down."""
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _int_params(route: APIRoute) -> _IntParams:
    path: dict[str, None] = {}
    query: dict[str, None] = {}
    body = False
    for dependant in _dependants(route.dependant):
        path.update(
            (f.alias, None) for f in dependant.path_params if _holds_int(f.field_info.annotation)
        )
        query.update(
            (f.alias, None) for f in dependant.query_params if _holds_int(f.field_info.annotation)
        )
        body = body or bool(dependant.body_params)
    return _IntParams(path=tuple(path), query=tuple(query), json_body=body)


def _too_large(text: str) -> bool:
    """``text`` reads as a whole number (as pydantic would read it) outside 64 bits."""
    if not _LONG_NUMBER.search(text.encode("utf-8", "replace")):
        return False
    try:
        value = _LAX_INT.validate_python(text)
    except ValidationError:
        return False  # not a whole number: FastAPI's validation answers
    return not in_range(value)


def first_out_of_range(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where in a JSON document the first integer outside 64 bits is, if any."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if in_range(value) else path
    items: Iterator[tuple[str, Any]]
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = first_out_of_range(item, (*path, key))
        if found is not None:
            return found
    return None


def check_body(body: Any) -> None:
    """For a route that reads its JSON body itself: refuse an integer beyond 64 bits
    as the app-wide check refuses it for the others (422 naming its field)."""
    found = first_out_of_range(body)
    if found is not None:
        raise _refuse(".".join(found))


def _refuse(field: str) -> Invalid:
    return Invalid(
        "{name}: must be a whole number from {low} to {high}",
        field=field,
        name=field,
        low=INT64_MIN,
        high=INT64_MAX,
    )


_PARAMS: dict[int, tuple[APIRoute, _IntParams]] = {}


def _params_of(route: APIRoute) -> _IntParams:
    # By identity: routes live as long as the app; the route is kept with its entry so
    # an id is never reused for another route while the entry exists.
    entry = _PARAMS.get(id(route))
    if entry is None or entry[0] is not route:
        entry = _PARAMS[id(route)] = (route, _int_params(route))
    return entry[1]


async def refuse_int64_overflow(connection: HTTPConnection) -> None:
    """The app-wide dependency (``FastAPI(dependencies=...)``): raises ``Invalid`` (422)
    for the first out-of-range number, as the module docstring says."""
    route = connection.scope.get("route")
    if connection.scope["type"] != "http" or not isinstance(route, APIRoute):
        return
    params = _params_of(route)
    if not params:
        return
    for name in params.path:
        if _too_large(str(connection.path_params.get(name, ""))):
            raise _refuse(name)
    if params.query and _LONG_NUMBER.search(connection.scope.get("query_string", b"")):
        for name in params.query:
            for value in connection.query_params.getlist(name):
                if _too_large(value):
                    raise _refuse(name)
    if params.json_body and isinstance(connection, Request):
        # FastAPI has read the body before the dependencies run: this is its copy.
        body = await connection.body()
        field = _body_field(body) if _LONG_NUMBER.search(body) else None
        if field is not None:
            # A long number that is card data is refused as card data (the body's
            # own guard would say so; this check runs first).
            with contextlib.suppress(ValueError):
                check_value(json.loads(body))
            raise _refuse(field)


def _body_field(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: FastAPI's validation answers
    where = first_out_of_range(document)
    if where is None:
        return None
    return ".".join(where) or "body"


def document_bounds(openapi: dict[str, Any]) -> dict[str, Any]:
    """Give every integer of the OpenAPI document the bounds the API enforces.

    An integer without its own ``minimum``/``maximum`` gets the 64-bit ones, so a
    client (or a fuzzer) reading the document knows that a larger number is refused.
    Idempotent: bounds already there are kept.
    """

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
                if "minimum" not in node and "exclusiveMinimum" not in node:
                    node["minimum"] = INT64_MIN
                if "maximum" not in node and "exclusiveMaximum" not in node:
                    node["maximum"] = INT64_MAX
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi)
    return openapi
