"""Text files people upload (a show's rundown, a roster, a bank's export): how their
bytes become text, and how a problem on one of their lines is told.

Spreadsheets save CSV as UTF-8, with or without a byte-order mark, or, on a French
Windows, as cp1252; a file that is not valid UTF-8 is read as cp1252.
"""

from __future__ import annotations

from dataclasses import dataclass

UTF8_BOM = b"\xef\xbb\xbf"


def decode_upload(data: bytes) -> str:
    """The text of an uploaded file: UTF-8 (a leading byte-order mark dropped), else cp1252."""
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM) :].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


@dataclass(frozen=True)
class LineProblem:
    """What is wrong with a file, where: its line (None: the whole file) and column."""

    line: int | None
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "reason": self.reason}
