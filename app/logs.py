"""Log output: plain text or one JSON object per line, and never a card number.

Every handler of the process (ours and uvicorn's, which it set up before the app
is created) gets its formatter wrapped: whatever a record becomes, message,
arguments and traceback included, any run of digits holding a 13-19 digit
Luhn-valid card number is replaced before it is written. The pledge card guard
refuses such values at the door; this is the second lock, for values that reach a
log some other way (an exception message, a request line).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

from app.pledges.cardguard import has_card_number

REDACTED = "[card number removed]"
# A digit run as people type card numbers: digits with up to two separators between
# (spaces, dashes, dots; in a request line also "+", "%20" and "%2D").
_SEPARATOR = r"(?:[\s\-.+]|%20|%2[dD])"
_DIGIT_RUN = re.compile(rf"[0-9](?:{_SEPARATOR}{{0,2}}[0-9]){{12,}}")
_ENCODED_SEPARATOR = re.compile(r"%20|%2[dD]|\+")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _masked(match: re.Match[str]) -> str:
    run = match.group()
    return REDACTED if has_card_number(_ENCODED_SEPARATOR.sub(" ", run)) else run


def mask_card_numbers(text: str) -> str:
    """``text`` with every digit run that holds a Luhn-valid card number replaced."""
    if not any(c.isdigit() for c in text):
        return text
    return _DIGIT_RUN.sub(_masked, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at (UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class CardMaskingFormatter(logging.Formatter):
    """Wraps another formatter and masks card numbers in what it produces."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask_card_numbers(self.inner.format(record))


def _guard(handler: logging.Handler, replacement: logging.Formatter | None = None) -> None:
    current = handler.formatter
    if isinstance(current, CardMaskingFormatter):
        current = current.inner
    handler.setFormatter(CardMaskingFormatter(replacement or current))


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Set up the root handler (once) and guard every handler present."""
    root = logging.getLogger()
    ours: list[logging.Handler] = [h for h in root.handlers if getattr(h, "pledgeline", False)]
    if not ours:
        stream = logging.StreamHandler()
        stream.pledgeline = True  # type: ignore[attr-defined]
        root.addHandler(stream)
        ours = [stream]
    formatter: logging.Formatter = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(levelname)s %(asctime)s %(name)s: %(message)s")
    )
    for handler in ours:
        _guard(handler, formatter)
    number = logging.getLevelName(level.upper())
    root.setLevel(number if isinstance(number, int) else logging.DEBUG)  # uvicorn's "trace"
    # uvicorn's own handlers (set up before the app): JSON too if asked, guarded always.
    for name in ("", *_UVICORN_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            if handler not in ours:
                _guard(handler, JsonFormatter() if fmt == "json" else None)
