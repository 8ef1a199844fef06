"""Rules files are bounded: size, rules, expressions, nesting; no YAML aliases or tags;
never a ``RecursionError``; and checking one does not hold up the event loop."""

from __future__ import annotations

import asyncio

import pytest

from app.rules.engine import load_for_campaign
from app.rules.expressions import (
    MAX_BRACKET_DEPTH,
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    compile_condition,
)
from app.rules.loader import MAX_RULES, MAX_SCRIPTS, MAX_SOURCE_BYTES, MAX_YAML_DEPTH, RulesRefused
from tests.conftest import Hotline, setup_campaign


def _rule(when: str, name: str = "r") -> str:
    return f"  - name: {name}\n    on: call.received\n    when: '{when}'\n    then: [hangup]\n"


def _file(*rules: str) -> str:
    return "rules:\n" + "".join(rules)


# A condition of almost the longest length allowed, with brackets, calls and operators.
LONG_CONDITION = " || ".join(
    ['(caller.number.startsWith("+3361234") && caller.calls_today > 3)'] * 7
)
assert len(LONG_CONDITION) <= MAX_EXPRESSION_CHARS

# Each is refused, with the line where it goes wrong (None: the file as a whole).
REFUSED = {
    "too large": ("#" * MAX_SOURCE_BYTES + "\n", None, "over"),
    "deep flow collections": ("rules: " + "[" * 20000 + "]" * 20000, 1, "nest"),
    "deep block collections": (
        "rules:\n" + "".join("  " * i + "- \n" for i in range(1, 400)),
        MAX_YAML_DEPTH + 1,
        "nested too deeply",
    ),
    "an anchor and aliases": (
        "rules:\n  - &r\n    name: a\n    on: call.received\n    then: [hangup]\n  - *r\n",
        2,
        "anchors and aliases",
    ),
    "billion laughs": (
        "x: &a [l, l, l, l, l, l, l, l, l]\n"
        + "".join(
            f"x{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
        ),
        1,
        "anchors and aliases",
    ),
    "a python tag": ("rules: !!python/object/apply:os.system ['true']\n", 1, "tags"),
    "a tag made of '!'": (_file(_rule("x").replace("'x'", "!!!!true")), 4, "tags"),
    "too many rules": (
        _file(*(_rule("caller.withheld", f"r{i}") for i in range(MAX_RULES + 1))),
        2,
        f"at most {MAX_RULES}",
    ),
    "too many scripts": (
        "scripts:\n"
        + "".join(f"  - name: s{i}\n    steps: [{{say: hello}}]\n" for i in range(MAX_SCRIPTS + 1)),
        2,
        f"at most {MAX_SCRIPTS}",
    ),
    "a long expression": (
        _file(_rule(" || ".join(["caller.withheld"] * 40))),
        4,
        f"over {MAX_EXPRESSION_CHARS} characters",
    ),
    "deep brackets": (
        _file(_rule("(" * (MAX_BRACKET_DEPTH + 1) + "true" + ")" * (MAX_BRACKET_DEPTH + 1))),
        4,
        "brackets nest",
    ),
    "a long chain of operators": (_file(_rule("+".join(["1"] * 240) + " > 0")), 4, "chain"),
    "a run of '!'": (_file(_rule("!" * 300 + "true")), 4, "chain"),
    "a run of '-'": (_file(_rule("-" * 300 + "1 > 0")), 4, "chain"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_file_over_a_limit_is_refused_with_its_line(name: str) -> None:
    source, line, reason = REFUSED[name]
    with pytest.raises(RulesRefused) as caught:
        load_for_campaign(source, "c.yaml")
    problem = caught.value.problems[0]
    assert reason in str(problem.reason), problem
    assert problem.line == line, problem


def test_the_limits_leave_room_for_real_files() -> None:
    nested = "(" * MAX_BRACKET_DEPTH + "true" + ")" * MAX_BRACKET_DEPTH
    ruleset = load_for_campaign(
        _file(*(_rule(LONG_CONDITION, f"r{i}") for i in range(MAX_RULES - 1)), _rule(nested, "n")),
        "c.yaml",
    )
    assert len(ruleset.rules) == MAX_RULES
    assert MAX_YAML_DEPTH >= 10  # a script's step's button's action's arguments


@pytest.mark.parametrize(
    "source",
    [
        "(" * 5000 + "1" + ")" * 5000,
        "[" * 5000 + "]" * 5000,
        "!" * 5000 + "true",
        "+".join(["1"] * 3000),
        "x" * (MAX_EXPRESSION_CHARS + 1),
    ],
)
def test_no_expression_escapes_as_a_recursion_error(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition(source, "call.received")
    assert caught.value.kind == "limit"


async def test_the_api_refuses_a_deep_file_with_422_and_its_line(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    deep = "rules: " + "[" * 20000 + "]" * 20000
    r = await hotline.http.put(f"/campaigns/{cid}/rules", json={"source": deep})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "rules_invalid"
    assert r.json()["problems"][0]["line"] == 1
    # Larger than any file allowed: refused as the body's field, before any YAML.
    huge = {"source": "#" * (MAX_SOURCE_BYTES + 1)}
    r = await hotline.http.put(f"/campaigns/{cid}/rules", json=huge)
    assert r.status_code == 422 and r.json()["field"] == "source", r.text
    # Nothing changed.
    assert (await hotline.http.get(f"/campaigns/{cid}/rules")).json()["origin"] == "default"


async def test_checking_a_large_file_does_not_hold_up_other_requests(hotline: Hotline) -> None:
    cid = (await setup_campaign(hotline, agents=0))["campaign_id"]
    # The largest kind of file accepted: the most rules, each with a long condition.
    source = _file(*(_rule(LONG_CONDITION, f"r{i}") for i in range(MAX_RULES)))
    check = asyncio.create_task(
        hotline.http.post(f"/campaigns/{cid}/rules/check", json={"source": source})
    )
    await asyncio.sleep(0)  # the check is under way
    answered_meanwhile = 0
    while not check.done():
        r = await hotline.http.get("/healthz")
        assert r.status_code == 200
        if not check.done():
            answered_meanwhile += 1
        await asyncio.sleep(0.01)  # a breath: an in-process request may never suspend
    result = await check
    assert result.status_code == 200 and result.json()["ok"] is True, result.text
    # Run on the event loop, the check let /healthz through only while it read the
    # campaign (2 answers here); in a thread, all along its second of CPU (26 to 43).
    assert answered_meanwhile >= 10
