"""Text files people upload (a show's rundown, a roster, a bank's export): how their
bytes become text, and how a problem on one of their lines is told.

Spreadsheets save CSV as UTF-8, with or without a byte-order mark, or, on a French
Windows, as cp1252; a file that is not valid UTF-8 is read as cp1252.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.i18n import Message

UTF8_BOM = b"\xef\xbb\xbf"


def decode_upload(data: bytes) -> str:
    """The text of an uploaded file: UTF-8 (a leading byte-order mark dropped), else cp1252."""
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM) :].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class BadValue(ValueError):
    """A value refused, and why: a message id with its values (``str()`` is the English
    text), put into words in the reader's language where the refusal is answered."""

    def __init__(self, reason: Message) -> None:
        super().__init__(str(reason))
        self.reason = reason


@dataclass(frozen=True)
class LineProblem:
    """What is wrong with a file, where: its line (None: the whole file) and column.

    ``reason`` is a :class:`Message` (``str()``: English, for logs and the command
    line); ``as_dict`` puts it into words in the language of the answer."""

    line: int | None
    column: str | None
    reason: Message

    def as_dict(self, language: str = "en") -> dict[str, object]:
        return {"line": self.line, "column": self.column, "reason": self.reason.text(language)}
