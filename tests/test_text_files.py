"""app/text_files.py: the text of an uploaded file."""

from __future__ import annotations

import pytest

from app.i18n import Message
from app.text_files import UTF8_BOM, BadValue, LineProblem, decode_upload


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("Hélène;Caen".encode(), "Hélène;Caen"),
        (UTF8_BOM + "Hélène;Caen".encode(), "Hélène;Caen"),  # Excel's "CSV UTF-8"
        ("Hélène;Caen".encode("cp1252"), "Hélène;Caen"),  # Excel's "CSV" on Windows
        (b"", ""),
    ],
)
def test_an_upload_is_read_as_utf8_else_cp1252(data: bytes, text: str) -> None:
    assert decode_upload(data) == text


def test_a_line_problem_says_where_and_why_in_the_answer_s_language() -> None:
    problem = LineProblem(3, "Crédit", Message("longer than {limit} characters", limit=500))
    assert problem.as_dict() == {
        "line": 3,
        "column": "Crédit",
        "reason": "longer than 500 characters",
    }
    assert problem.as_dict("fr") == {
        "line": 3,
        "column": "Crédit",
        "reason": "plus de 500 caractères",
    }
    assert str(problem.reason) == "longer than 500 characters"  # logs, the command line


def test_a_reason_inside_a_reason_is_in_the_same_language() -> None:
    inner = Message("more than {digits} decimals for {currency}", digits=2, currency="EUR")
    reason = Message("not an amount: {reason}", reason=inner)
    assert reason.text("fr") == "pas un montant : plus de 2 décimales pour EUR"
    assert str(reason) == "not an amount: more than 2 decimals for EUR"
    refused = BadValue(reason)
    assert isinstance(refused, ValueError) and str(refused) == str(reason)
    assert refused.reason == reason
