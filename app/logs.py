"""Log output: plain text or one JSON object per line, never a card number or a token.

Every handler of the process (ours and uvicorn's, which it set up before the app
is created) gets its formatter wrapped: whatever a record becomes, message,
arguments and traceback included, any digit run holding a card number is
replaced before it is written. The card guard (``app/cardguard.py``) refuses
such values at the door; this is the second lock, for values that reach a log
some other way (an exception message, a request line). The same finder is used,
so a number is masked however it is written (any script, separators, invisible
characters), and in request lines percent-encoded characters are decoded first.

Secrets are masked too: the value of a ``token``, ``secret``, ``password`` or
``key`` query parameter (the websocket handshake ``/ws/agent?token=...`` is in
uvicorn's access log), a bearer token, and such a key in JSON.

Phone numbers and e-mail addresses are personal data (docs/personal-data.md): an
international number (``+33 6 12 34 56 78``, ``%2B33612345678`` in a request
line, ``0033...``) and a French national one (``06 12 34 56 78``, ``0612345678``)
become ``[phone number removed]``, an address ``[e-mail removed]``. Each is one
regular expression built to be scanned fast (see ``_PHONE``; the e-mail one only
runs on a line holding an ``@``): a line holding neither costs about a
microsecond more, against some 30 for the card-number masking.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

from app.cardguard import card_spans

REDACTED = "[card number removed]"
SECRET_REMOVED = "[removed]"
_SECRET_NAMES = r"(?:ws_)?token|access_token|refresh_token|secret|password|passwd|pin|api_key|key"
_SECRET_QUERY = re.compile(rf"([?&;](?:{_SECRET_NAMES})=)[^&\s\"'#]+", re.IGNORECASE)
_SECRET_JSON = re.compile(rf"""(["'](?:{_SECRET_NAMES})["']\s*:\s*["'])[^"']+""", re.IGNORECASE)
_BEARER = re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
PHONE_REMOVED = "[phone number removed]"
EMAIL_REMOVED = "[e-mail removed]"
# International (after "+", "%2B" or "00": 8 to 15 digits) or French national (0
# then 9 digits, in pairs or not). The groups of one number are split by one kind
# of separator throughout (a space, dot or dash, also "%20" or "+" in a request
# line), so a time with its fraction and offset (``14:27:06.099183+00:00``) is not
# read as a number. Not after a digit or a dot, not before a digit.
# The pattern opens with a character set and each branch checks what that character
# was by looking behind: the regex engine then scans a line for "+", "%" or "0"
# quickly, which keeps a line without a phone number (most) at about a microsecond.
_SEP = r"[ .\-]|%2[0DdEe]"
_PHONE = re.compile(
    r"[+%0](?:"
    rf"(?<=\+)\d+(?:(?P<i>{_SEP})\d+(?:(?P=i)\d+)*)?"  # +33 6 12 34 56 78
    rf"|(?<=%)2[Bb]\d+(?:(?P<u>{_SEP}|\+)\d+(?:(?P=u)\d+)*)?"  # %2B33612345678
    rf"|(?<![\d.]0)0\d*(?:(?P<z>{_SEP})\d+(?:(?P=z)\d+)*)?"  # 0033612345678
    rf"|(?<![\d.]0)[1-9](?P<n>{_SEP}|\+|)\d\d(?:(?P=n)\d\d){{3}}"  # 06 12 34 56 78
    r")(?!\d)"
)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _phone_removed(match: re.Match[str]) -> str:
    """The number's replacement, if it has a phone number's count of digits."""
    text = match.group()
    if match.group("n") is not None:
        return PHONE_REMOVED  # national: exactly ten digits, by the pattern
    digits = sum(map(str.isdigit, _PERCENT_ESCAPE.sub("", text)))
    if text.startswith("00"):
        digits -= 2
    return PHONE_REMOVED if 8 <= digits <= 15 else text


_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")


def mask_card_numbers(text: str) -> str:
    """``text`` with every digit run that holds a card number replaced."""
    spans = card_spans(text, percent_encoded=True)
    for start, end in reversed(spans):
        text = text[:start] + REDACTED + text[end:]
    return text


def mask_secrets(text: str) -> str:
    """``text`` with token, secret and password values replaced."""
    if "=" in text:
        text = _SECRET_QUERY.sub(rf"\g<1>{SECRET_REMOVED}", text)
    if ":" in text:
        text = _SECRET_JSON.sub(rf"\g<1>{SECRET_REMOVED}", text)
    return _BEARER.sub(rf"\g<1>{SECRET_REMOVED}", text)


def mask_personal_data(text: str) -> str:
    """``text`` with phone numbers and e-mail addresses replaced."""
    text = _PHONE.sub(_phone_removed, text)
    if "@" in text:
        text = _EMAIL.sub(EMAIL_REMOVED, text)
    return text


def mask(text: str) -> str:
    """What may be written to a log: no card number, no secret, no phone or e-mail."""
    # Cards first: a card number is never read as a phone number (none starts with 0).
    return mask_personal_data(mask_card_numbers(mask_secrets(text)))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at (UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            # Masked before encoding: JSON escapes would hide separators.
            "message": mask(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class CardMaskingFormatter(logging.Formatter):
    """Wraps another formatter and masks card numbers and secrets in what it produces."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record))


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
