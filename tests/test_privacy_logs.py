"""Phone numbers and e-mail addresses never reach a log line (docs/personal-data.md),
the built-in directory's own access log included; other numbers are kept."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest

from app.cti.directory_server import DirectoryProcess
from app.logs import (
    EMAIL_REMOVED,
    PHONE_REMOVED,
    REDACTED,
    CardMaskingFormatter,
    JsonFormatter,
    mask,
)

NUMBER = "+33123456789"
NUMBER_DIGITS = "123456789"


@pytest.mark.parametrize(
    "written",
    [
        "+33123456789",
        "+33 1 23 45 67 89",
        "+33.1.23.45.67.89",
        "0033123456789",
        "01 23 45 67 89",
        "01.23.45.67.89",
        "01-23-45-67-89",
        "0123456789",
        "%2B33123456789",
        "01%2023%2045%2067%2089",
        "01+23+45+67+89",
        "+44 20 7946 0018",
        "00 33 1 23 45 67 89",
        "%2B33%201%2023%2045%2067%2089",
    ],
)
def test_a_phone_number_is_masked_however_written(written: str) -> None:
    assert mask(f"caller {written} waiting") == f"caller {PHONE_REMOVED} waiting"
    assert mask(f"GET /lookup?number={written} HTTP/1.1") == (
        f"GET /lookup?number={PHONE_REMOVED} HTTP/1.1"
    )


def test_an_email_is_masked() -> None:
    assert mask("from zephyrine.q+tv@example.co.uk, ok") == f"from {EMAIL_REMOVED}, ok"


@pytest.mark.parametrize(
    "kept",
    [
        "at 2026-12-06T14:00:00+00:00 took 0.0123456789 s",
        "INFO 2026-12-06 14:00:00,123 app: call 1234 offered to agent 17",
        "epoch 1733412345.123456 seq 100000001",
        "pledge FE9-EB8 saved: 2500 EUR (call 3)",
        "ratio 3.0612345678",
        "+1 queue",
        # Times with a fraction and an offset (JSON log lines, isoformat()).
        "at 2026-12-06T14:27:06.099183+00:00",
        "at 2026-12-06T14:00:01.000001+00:00 then 12:05:06.070809",
        "retries +1 2026-12-06",
    ],
)
def test_other_numbers_are_kept(kept: str) -> None:
    assert mask(kept) == kept


def test_a_number_next_to_other_digits_is_still_masked() -> None:
    assert mask("call 06 12 34 56 78 2 times") == f"call {PHONE_REMOVED} 2 times"


def test_cards_are_still_masked_first() -> None:
    assert mask("card 4111 1111 1111 1111 from 06 12 34 56 78") == (
        f"card {REDACTED} from {PHONE_REMOVED}"
    )


def test_every_formatter_masks_numbers_in_messages_and_tracebacks() -> None:
    formatter = CardMaskingFormatter(JsonFormatter())
    try:
        raise ValueError(f"no pop for {NUMBER}")
    except ValueError:
        record = logging.LogRecord(
            "app.cti",
            logging.ERROR,
            __file__,
            1,
            "caller %s (%s)",
            ("06 12 34 56 78", "x@y.fr"),
            None,
        )
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert NUMBER not in line and "06 12 34 56 78" not in line and "x@y.fr" not in line
    assert PHONE_REMOVED in line and EMAIL_REMOVED in line


def test_the_directory_access_log_masks_the_numbers_looked_up() -> None:
    with DirectoryProcess(log_level="info", faults=False) as directory:
        for number in (NUMBER, "01 23 45 67 89", "0561234567", "06.12.34.56.78"):
            answer = httpx.get(f"{directory.base_url}/lookup?number={quote(number)}", timeout=10)
            assert answer.status_code in (200, 404), answer.text
            answer = httpx.get(f"{directory.base_url}/lookup", params={"number": number})
            assert answer.status_code in (200, 404), answer.text
        directory.stop(keep_log=True)
        log = directory.log_text()
    assert log.count("GET /lookup?number=") == 8, log
    assert log.count(PHONE_REMOVED) == 8, log
    for digits in (NUMBER_DIGITS, "561234567", "612345678"):
        assert digits not in log.replace(" ", "").replace(".", "").replace("%20", "")
