"""Whole numbers beyond 64 bits are refused with 422 naming the field, on every route.

The routes come from the app's own OpenAPI schema, so a route added later is
covered without touching this file. Each runs on both databases: before the
guard (``app/int64.py``) SQLite raised ``OverflowError`` and PostgreSQL a
``DataError``, both a 500.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import Hotline

TOO_LARGE = (2**63, -(2**63) - 1)
INT64_MAX = 2**63 - 1


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _is_integer(schema: dict[str, Any]) -> bool:
    if schema.get("type") == "integer":
        return True
    if schema.get("type") == "array":
        return _is_integer(schema.get("items", {}))
    return any(_is_integer(s) for s in schema.get("anyOf", []))


def _params(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


def _url(path: str, operation: dict[str, Any], values: dict[str, Any]) -> str:
    """The path with every path parameter filled: ``values`` for some, 1 (or 'x') else."""
    filled = path
    for param in _params(operation, "path"):
        name = param["name"]
        default = 1 if _is_integer(param["schema"]) else "x"
        filled = filled.replace("{" + name + "}", str(values.get(name, default)))
    return filled


def _required_query(operation: dict[str, Any], skip: str = "") -> dict[str, Any]:
    """Small valid values for the required query parameters (but ``skip``)."""
    return {
        p["name"]: 1 if _is_integer(p["schema"]) else "x"
        for p in _params(operation, "query")
        if p.get("required") and p["name"] != skip
    }


async def _schema(hotline: Hotline) -> dict[str, Any]:
    response = await hotline.http.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def _assert_refused(response: httpx.Response, field: str, where: str) -> None:
    assert response.status_code == 422, (where, response.status_code, response.text)
    body = response.json()
    # -(2**63) - 1 is 9223372036854775809 with a sign: Luhn-valid, so a body holding
    # it is refused as card data, the guard that comes first; still a 422 naming it.
    assert body["code"] in ("invalid", "card_number"), (where, body)
    assert body["field"] == field, (where, body)


async def test_every_int_path_parameter_beyond_64_bits_is_refused(hotline: Hotline) -> None:
    schema = await _schema(hotline)
    anonymous = httpx.AsyncClient(transport=hotline.http._transport, base_url="http://testserver")
    checked = 0
    async with anonymous:
        for method, path, operation in _operations(schema):
            for param in _params(operation, "path"):
                if not _is_integer(param["schema"]):
                    continue
                for value in TOO_LARGE:
                    url = _url(path, operation, {param["name"]: value})
                    where = f"{method} {url}"
                    query = _required_query(operation)
                    response = await hotline.http.request(method, url, params=query, json={})
                    _assert_refused(response, param["name"], where)
                    # Without a login too: a 4xx, never a 500.
                    response = await anonymous.request(method, url, params=query, json={})
                    assert 400 <= response.status_code < 500, (where, response.text)
                    checked += 1
    assert checked >= 40  # about 30 routes, most with one id; both signs


async def test_every_int_query_parameter_beyond_64_bits_is_refused(hotline: Hotline) -> None:
    schema = await _schema(hotline)
    checked = 0
    for method, path, operation in _operations(schema):
        for param in _params(operation, "query"):
            if not _is_integer(param["schema"]):
                continue
            for value in TOO_LARGE:
                query = {**_required_query(operation, skip=param["name"]), param["name"]: value}
                url = _url(path, operation, {})
                response = await hotline.http.request(method, url, params=query, json={})
                _assert_refused(response, param["name"], f"{method} {url}?{query}")
                checked += 1
    assert checked >= 10


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = schema["components"]["schemas"][name]
    return node


async def test_every_json_body_with_an_integer_beyond_64_bits_is_refused(
    hotline: Hotline,
) -> None:
    schema = await _schema(hotline)
    checked = 0
    for method, path, operation in _operations(schema):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        body_schema = _resolve(schema, content["application/json"]["schema"])
        properties = body_schema.get("properties", {})
        integers = [n for n, p in properties.items() if _is_integer(_resolve(schema, p))]
        field = integers[0] if integers else next(iter(properties), "probe")
        url = _url(path, operation, {})
        for value in TOO_LARGE:
            response = await hotline.http.request(
                method, url, params=_required_query(operation), json={field: value}
            )
            _assert_refused(response, field, f"{method} {url} {field}={value}")
            checked += 1
    assert checked >= 20


async def test_a_nested_integer_is_named_by_its_path(hotline: Hotline) -> None:
    response = await hotline.http.post(
        "/campaigns",
        json={"name": "Nested", "dialled_numbers": ["+33800000001"], "extra": [{"n": 2**64}]},
    )
    _assert_refused(response, "extra.0.n", "nested")
    assert re.search(r"extra\.0\.n : doit être un nombre entier", response.json()["message"])


async def test_the_largest_64_bit_values_still_reach_the_route(hotline: Hotline) -> None:
    # In range: the route answers as it always did (no such campaign), not the guard.
    for value in (INT64_MAX, -(2**63)):
        response = await hotline.http.get(f"/campaigns/{value}")
        assert response.status_code == 404, response.text
    # A body without large numbers is handed on intact.
    response = await hotline.http.post(
        "/campaigns", json={"name": "Intact", "dialled_numbers": ["+33800000002"]}
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Intact"


async def test_a_number_that_is_not_whole_is_left_to_the_usual_validation(
    hotline: Hotline,
) -> None:
    response = await hotline.http.get("/campaigns/" + "9" * 30 + ".5")
    assert response.status_code == 422
    assert response.json()["field"] == "campaign_id"


@pytest.mark.parametrize("value", ["1" + "0" * 40, "-" + "9" * 25])
async def test_digits_in_a_text_query_parameter_are_not_mistaken(
    hotline: Hotline, value: str
) -> None:
    # `slot` is text: a long run of digits there is a slot name, not a number.
    response = await hotline.http.get(
        "/pledges/export.csv", params={"campaign_id": INT64_MAX, "slot": value}
    )
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "campaign_id"
