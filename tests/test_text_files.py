"""app/text_files.py: the text of an uploaded file."""

from __future__ import annotations

import pytest

from app.text_files import UTF8_BOM, LineProblem, decode_upload


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


def test_a_line_problem_says_where() -> None:
    problem = LineProblem(3, "phone", "not a phone number")
    assert problem.as_dict() == {"line": 3, "column": "phone", "reason": "not a phone number"}
