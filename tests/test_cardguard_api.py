"""Card numbers injected into every text field of every endpoint of the real app,
on both databases: each is refused with ``422 {code: "card_number", field}``
naming the field and never echoing the value. Then the database (every table;
for SQLite the files too, WAL included), the captured logs and both exports hold
none of them.

The endpoints and their fields come from the app's own OpenAPI schema, so a new
endpoint is covered without changing this test; the telephony and payment
webhooks (raw signed bodies, outside the schema) are injected by hand. The card
numbers are drawn by Hypothesis (``tests/card_strategies.py``), the same ones on
every run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from app import signing
from app.cardguard import find_card_data, luhn_runs, normalise
from app.main import create_app
from tests.card_strategies import card_in_text, examples, split_card
from tests.conftest import Hotline, make_settings
from tests.pledge_helpers import key, pledge_body, pledge_setup
from tests.test_pledges_cardguard import scan_database

PATH_VALUES = {"reference": "ABC-DEF"}


def _openapi() -> dict[str, Any]:
    app = create_app(make_settings("sqlite+aiosqlite:///unused.db"))
    return app.openapi()


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _shapes(schema: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, spec)
    return [_resolve(s, spec) for s in schema.get("anyOf", [schema])]


def _injections(
    name: str, schema: dict[str, Any], spec: dict[str, Any], value: str, digits: str
) -> Iterator[tuple[Any, str]]:
    """(a JSON value holding ``value``, the field the refusal must name) for each
    place of this property a text can go: itself, an item, a key's value, a field
    of an object in a list."""
    for shape in _shapes(schema, spec):
        kind = shape.get("type")
        if kind == "string":
            yield value, name
        elif kind == "integer":
            yield int(digits), name  # a card sent as a JSON number
        elif kind == "array" and "items" in shape:
            item = _resolve(shape["items"], spec)
            if item.get("type") == "string":
                yield [value], f"{name}.0"
            elif item.get("type") == "integer":
                yield [int(digits)], f"{name}.0"  # a card as a number in a list of ids
            elif item.get("type") == "object" or "properties" in item:
                for sub, sub_schema in item.get("properties", {}).items():
                    for injected, field in _injections(sub, sub_schema, spec, value, digits):
                        yield [{sub: injected}], f"{name}.0.{field}"
        elif kind == "object" and "additionalProperties" in shape:
            yield {"k": value}, f"{name}.k"


def endpoint_fields() -> list[tuple[str, str, str, Any, str]]:
    """(method, path, property, injected body value builder input, expected field)."""
    spec = _openapi()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            schema = _resolve(body["schema"], spec)
            for name, prop in schema.get("properties", {}).items():
                found.append((method, path, name, prop, spec))
    return found


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "1" + path[path.index("}") + 1 :]
    return path


def _assert_refused(response: Any, field: str, typed: str, digits: str) -> None:
    assert response.status_code == 422, (field, response.text)
    body = response.json()
    assert (body["code"], body["field"]) == ("card_number", field), body
    assert typed not in response.text and digits not in response.text
    assert not list(luhn_runs(response.text))


def digits_in(text: str) -> str:
    """Each digit run of ``text`` (after normalisation), its digits joined, one per
    line: an injected number is in the text if it is in one of these, whatever
    separators or scripts it was written with."""
    runs, current = [], []
    for char in normalise(text).text:
        if char.isdigit():
            current.append(char)
        elif char.isalpha() or char == "\n":
            if current:
                runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return "\n".join(runs)


async def _scan_everything(
    hotline: Hotline, campaign_id: int, injected: list[str], log_text: str
) -> None:
    """Neither an injected number nor any card number anywhere it could have gone."""
    assert await scan_database(hotline) == []
    rows = []
    async with hotline.db.read() as session:
        from sqlalchemy import Text, cast, select

        from app.db import Base

        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(*(cast(c, Text) for c in table.columns)))
            rows.extend(" | ".join(str(v) for v in row) for row in result)
    stored = digits_in("\n".join(rows))
    assert [d for d in injected if d in stored] == []
    url = hotline.settings.database_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]
        raw = digits_in("\n".join(p.read_bytes().decode("utf-8", "replace") for p in files))
        assert [d for d in injected if d in raw] == [], "a card number is in the database files"
    logged = digits_in(log_text)
    assert [d for d in injected if d in logged] == []
    csv_export = await hotline.http.get("/pledges/export.csv", params={"campaign_id": campaign_id})
    assert csv_export.status_code == 200, csv_export.text
    cells = [c for row in csv.reader(io.StringIO(csv_export.text)) for c in row]
    xlsx_export = await hotline.http.get(
        "/pledges/export.xlsx", params={"campaign_id": campaign_id}
    )
    assert xlsx_export.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx_export.content), read_only=True)
    cells += [
        str(c)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for c in row
        if c is not None
    ]
    assert len(cells) > 10  # the pledge saved below is there
    exported = digits_in("\n".join(cells))
    assert [d for d in injected if d in exported] == []
    assert [c for c in cells if list(luhn_runs(c))] == []


async def test_card_numbers_in_every_field_of_every_endpoint(
    hotline: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = await pledge_setup(hotline)
    fields = endpoint_fields()
    cards = examples(card_in_text(), 40)
    injected: list[str] = []
    counts_before = await _row_counts(hotline)
    covered: set[tuple[str, str]] = set()
    for n, (method, path, name, prop, spec) in enumerate(fields):
        digits, typed = cards[n % len(cards)]
        for value, field in _injections(name, prop, spec, typed, digits):
            r = await hotline.http.request(
                method.upper(), _url(path), json={name: value}, headers=key()
            )
            _assert_refused(r, field, typed, digits)
            injected.append(digits)
            covered.add((method, path))
    # Every endpoint with a JSON body had a text (or number) field to inject into.
    assert len(covered) == len({(m, p) for m, p, *_ in fields}) >= 20
    assert len(injected) >= 100
    assert await _row_counts(hotline) == counts_before

    # The signed webhooks: every text field of every telephony event, the payment.
    events = {
        "call.incoming": {"call_id": "c-1", "caller": "0612345678", "dialled": "+33800000001"},
        "call.hangup": {"call_id": "c-1"},
        "seat.answered": {"call_id": "c-1", "seat": "sip:seat1@pbx"},
        "seat.hangup": {"call_id": "c-1", "seat": "sip:seat1@pbx"},
    }
    webhook_cards = iter(examples(card_in_text(), 16))
    for kind, event in events.items():
        for name in ("event_id", *event):
            digits, typed = next(webhook_cards)
            body = {"event_id": f"evt-{uuid.uuid4().hex}", "type": kind, **event, name: typed}
            r = await hotline.telephony(body)
            _assert_refused(r, name, typed, digits)
            injected.append(digits)
    r = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"]), headers={**setup["agent_headers"], **key()}
    )
    assert r.status_code == 201, r.text
    reference = r.json()["reference"]
    for name in ("payment_id", "reference", "currency"):
        digits, typed = next(webhook_cards)
        payment = {"payment_id": "pay-1", "reference": reference, "amount_minor": 100,
                   "currency": "EUR", name: typed}  # fmt: skip
        raw = json.dumps(payment).encode()
        secret = hotline.settings.payment_webhook_secret
        r = await hotline.http.post(
            "/payments/webhook",
            content=raw,
            headers={"Content-Type": "application/json", **signing.signed_headers(secret, raw)},
        )
        _assert_refused(r, name, typed, digits)
        injected.append(digits)
    rows = await hotline.sql("SELECT count(*) FROM pledge_payments")
    assert rows[0][0] == 0

    # A number typed across two fields of the pledge form.
    for digits, first, second in examples(split_card(), 6):
        body = pledge_body(setup["call_id"], first_name=first, last_name=second)
        r = await hotline.http.post(
            "/pledges", json=body, headers={**setup["agent_headers"], **key()}
        )
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "card_number"
        assert r.json()["field"] in ("first_name", "last_name", "first_name+last_name")
        injected.append(digits)

    await _scan_everything(hotline, setup["campaign_id"], injected, caplog.text)


async def _row_counts(hotline: Hotline) -> dict[str, int]:
    from app.db import Base

    counts = {}
    for table in Base.metadata.sorted_tables:
        rows = await hotline.sql(f"SELECT count(*) FROM {table.name}")
        counts[table.name] = rows[0][0]
    return counts


def _api_routes(routes: list[Any]) -> Iterator[Any]:
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        for attribute in ("original_router", "router"):
            inner = getattr(route, attribute, None)
            if inner is not None and hasattr(inner, "routes"):
                yield from _api_routes(inner.routes)
                break
        else:
            if hasattr(route, "routes") and not isinstance(route, APIRoute):
                yield from _api_routes(route.routes)


def test_every_request_body_is_card_guarded() -> None:
    """Each body model of the API refuses card data before its own validation."""
    from app.cardguard import CardGuarded

    app = create_app(make_settings("sqlite+aiosqlite:///unused.db"))
    bodies = [
        (route.path, param.field_info.annotation)
        for route in _api_routes(app.routes)
        for param in route.dependant.body_params
    ]
    assert len(bodies) >= 20
    unguarded = [
        path
        for path, model in bodies
        if not (isinstance(model, type) and issubclass(model, CardGuarded))
    ]
    assert unguarded == []
    assert find_card_data({"ok": "nothing here"}) is None
