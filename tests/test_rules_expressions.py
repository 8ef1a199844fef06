"""Rule conditions: CEL checked at load (facts, types, syntax) and evaluated without eval."""

from __future__ import annotations

from typing import Any

import pytest

from app.rules.expressions import (
    EvaluationError,
    ExpressionError,
    compile_condition,
    compile_expression,
)

FACTS: dict[str, dict[str, Any]] = {
    "caller": {
        "number": "+33612345678",
        "withheld": False,
        "calls_last_10_minutes": 3,
        "calls_last_hour": 4,
        "pledged_total": 0,
    },
    "call": {"queue": "pledges", "wait_seconds": 12.5, "tags": ["withheld"]},
    "time": {"hour": 22, "weekday": 6},
    "agent": {"skills": ["pledges", "specialist"]},
    "pledge": {"amount": 150000},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("caller.calls_last_10_minutes >= 3 && caller.pledged_total == 0", True),
        ("!caller.withheld", True),
        ("time.hour in [22, 23, 0]", True),
        ("time.weekday in [6, 7] || time.hour < 8", True),
        ('"specialist" in agent.skills', True),
        ('"withheld" in call.tags', True),
        ("call.wait_seconds > 12 && call.wait_seconds < 13", True),
        ("call.wait_seconds > 12.6", False),
        ('caller.number.startsWith("+336")', True),
        ("size(caller.number) == 12", True),
        ('call.queue == "pledges" ? true : false', True),
        ("caller.calls_last_hour / 3 == 1", True),  # integer division
        ("-7 / 2 == -3", True),  # truncates toward zero, as CEL does
        ("caller.calls_last_hour % 3 == 1", True),
        ("double(caller.calls_last_hour) / 8.0 == 0.5", True),
        ("(caller.calls_last_hour + 1) * 2 == 10", True),
        ("'a\\nb'.size() == 3", True),
    ],
)
def test_conditions_evaluate(source: str, expected: bool) -> None:
    assert compile_condition(source, "agent.flagged").evaluate(FACTS) is expected


def test_a_condition_lists_the_facts_it_reads() -> None:
    compiled = compile_condition("caller.calls_last_hour > 2 && time.hour < 9")
    assert compiled.facts == {"caller.calls_last_hour", "time.hour"}


@pytest.mark.parametrize(
    ("source", "kind", "words"),
    [
        ("caller.nope > 1", "unknown_fact", "unknown fact 'caller.nope'"),
        ("weather.rain", "unknown_fact", "unknown fact 'weather'"),
        ("caller.withheld + 1", "type", "cannot compute bool + int"),
        ("caller.number < 3", "type", "cannot compare string < int"),
        ("caller.calls_last_hour && true", "type", "'&&' joins bools"),
        ("3 in caller.number", "type", "'in' needs a list"),
        ('"x" in [1, 2]', "type", "cannot look for a string"),
        ("caller.number >", "syntax", "syntax error"),
        ("caller.calls_last_hour >= 3 &&", "syntax", "syntax error"),
        ("caller.number.upper()", "type", "has no function upper()"),
        ("eval('1')", "type", "unknown function eval()"),
        ("caller.__class__", "unknown_fact", "unknown fact 'caller.__class__'"),
        ("caller", "type", "'when' must be true or false"),
    ],
)
def test_bad_conditions_are_refused_with_a_reason(source: str, kind: str, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition(source)
    assert caught.value.kind == kind
    assert words in caught.value.message


def test_facts_of_other_events_are_refused() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition("pledge.amount > 100", "call.received")
    assert caught.value.kind == "unknown_fact"
    assert "not known on call.received" in caught.value.message
    assert compile_condition("pledge.amount > 100", "pledge.saved").evaluate(FACTS) is True


def test_a_runtime_failure_is_an_evaluation_error() -> None:
    compiled = compile_expression("caller.calls_last_hour / (caller.pledged_total)")
    with pytest.raises(EvaluationError):
        compiled.evaluate(FACTS)


def test_the_line_of_a_syntax_error_inside_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition("caller.withheld &&\n  caller.number ==")
    assert caught.value.line == 2


# --- what CEL says, where Python would say otherwise ---------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('string(true) == "true"', True),  # CEL's spelling, not Python's "True"
        ('string(false) + "!" == "false!"', True),
        ('"ÉCOLE Abc".lowerAscii() == "École abc"', True),  # ASCII letters only
        ("1.0 / 0.0 > 1e308", True),  # doubles are IEEE 754: no error
        ("(1 / 0 == 1) || true", True),  # || and && are commutative over errors
        ("(1 / 0 == 1) && false", False),
        ("true || (1 / 0 == 1)", True),
        ('size([] + ["a"]) == 1', True),
        ("9223372036854775807 - 1 > 0", True),
        ("call.wait_seconds > 12", True),  # an int and a double compare, as numbers
        ("1 == 1.0", True),
    ],
)
def test_cel_semantics(source: str, expected: bool) -> None:
    assert compile_condition(source).evaluate(FACTS) is expected


@pytest.mark.parametrize(
    "source",
    [
        "9223372036854775807 + 1 > 0",  # 64-bit ints: overflow is an error
        "-9223372036854775807 - 2 < 0",
        "9223372036854775807 * 2 > 0",
        "-(-9223372036854775807 - 1) > 0",
        "int(1e19) > 0",
        "(1 / 0 == 1) || false",
        "(1 / 0 == 1) && true",
    ],
)
def test_cel_errors(source: str) -> None:
    with pytest.raises(EvaluationError):
        compile_condition(source).evaluate(FACTS)


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("1 + 1.0 > 0", "cannot compute int + double"),  # no implicit conversion in CEL
        ("call.wait_seconds * 2 > 0", "cannot compute double * int"),
        ("(true ? 1 : 2.0) > 0", "branches of '?:' differ"),
        ("size([1, 2.0]) > 0", "a list holds one type"),
        ("9223372036854775808 > 0", "outside the 64-bit integers"),
    ],
)
def test_what_cel_gives_no_meaning_is_refused(source: str, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition(source)
    assert words in caught.value.message
