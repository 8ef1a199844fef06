"""What the OpenAPI fuzz (tests/test_openapi_fuzz.py) found, held one by one on both
databases: the document names every refusal with its body and every integer's
bounds, a 405 names all the methods of its path, a bare number is not a time, and
a default queue longer than a queue name is refused (PostgreSQL answered 500)."""

from __future__ import annotations

from typing import Any

import pytest

from app.int64 import INT64_MAX, INT64_MIN
from tests.conftest import Hotline
from tests.test_api import assert_error, new_campaign

ERROR_REF = "#/components/schemas/ErrorOut"


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def _schema_ref(response: dict[str, Any]) -> str | None:
    content = response.get("content", {}).get("application/json", {})
    ref: str | None = content.get("schema", {}).get("$ref")
    return ref


async def test_every_operation_documents_its_refusals_with_the_error_body(
    hotline: Hotline,
) -> None:
    spec = (await hotline.http.get("/openapi.json")).json()
    operations = _operations(spec)
    assert len(operations) >= 60
    for method, path, operation in operations:
        responses = operation["responses"]
        assert _schema_ref(responses["503"]) == ERROR_REF, (method, path)
        if path in ("/healthz", "/readyz"):
            continue
        for status in ("401", "403"):
            assert _schema_ref(responses[status]) == ERROR_REF, (method, path, status)
        if path == "/metrics":
            continue
        for status in ("400", "404", "409", "422"):
            ref = _schema_ref(responses[status])
            assert ref is not None and ref.startswith("#/components/schemas/"), (method, path)
    # FastAPI's own 422 body (``detail``) is never answered, so never documented.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert _schema_ref(_find(operations, "PUT", "/campaigns/{campaign_id}/rules")["422"]) == (
        "#/components/schemas/RulesRefusedOut"
    )
    assert "429" in _find(operations, "POST", "/auth/login")
    assert "413" in _find(operations, "POST", "/telephony/events")


def _find(
    operations: list[tuple[str, str, dict[str, Any]]], method: str, path: str
) -> dict[str, Any]:
    [responses] = [op["responses"] for m, p, op in operations if (m, p) == (method, path)]
    return responses


async def test_every_integer_of_the_document_has_its_64_bit_bounds(hotline: Hotline) -> None:
    spec = (await hotline.http.get("/openapi.json")).json()
    integers: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer":
                integers.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert len(integers) > 50
    for schema in integers:
        assert INT64_MIN <= schema["minimum"] <= schema["maximum"] <= INT64_MAX, schema
    [param] = [
        p
        for p in spec["paths"]["/campaigns/{campaign_id}"]["get"]["parameters"]
        if p["name"] == "campaign_id"
    ]
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (INT64_MIN, INT64_MAX)


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/campaigns", "GET, POST"),
        ("/campaigns/1", "GET, PATCH"),
        ("/agents/1", "GET, PATCH"),
        ("/pledges/ABC-1234", "GET, PATCH"),
        # Not the pledge routes' /pledges/{reference}: the export is a resource of its own.
        ("/pledges/export.csv", "GET"),
        ("/pledges/totals", "GET"),
    ],
)
async def test_a_405_names_every_method_of_its_path(
    hotline: Hotline, path: str, methods: str
) -> None:
    r = await hotline.http.request("DELETE", path)
    assert_error(r, 405, "method_not_allowed", None)
    assert r.headers["allow"] == methods


@pytest.mark.parametrize("value", ["0.5", "1733412345", "-1", "1e9"])
async def test_a_bare_number_is_not_a_time(hotline: Hotline, value: str) -> None:
    campaign = await new_campaign(hotline)
    for path, params in (
        ("/pledges", {}),
        ("/pledges/totals", {"campaign_id": campaign["id"]}),
        ("/pledges/export.csv", {"campaign_id": campaign["id"]}),
    ):
        for name in ("since", "until"):
            r = await hotline.http.get(path, params={**params, name: value})
            assert_error(r, 422, "invalid", name)
    r = await hotline.http.get("/pledges", params={"until": "2026-12-05T20:00:00+00:00"})
    assert r.status_code == 200, r.text


async def test_a_default_queue_longer_than_a_queue_name_is_refused(hotline: Hotline) -> None:
    r = await hotline.http.post("/campaigns", json={"name": "Long", "default_queue": "q" * 101})
    assert_error(r, 422, "invalid", "default_queue")
    assert (await hotline.http.get("/campaigns")).json() == []
    campaign = await new_campaign(hotline, default_queue="q" * 100)
    r = await hotline.http.patch(
        f"/campaigns/{campaign['id']}", json={"default_queue": "Pledges Line"}
    )
    assert_error(r, 422, "invalid", "default_queue")
