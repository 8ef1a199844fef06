"""The CLI's human output in the operator's language: ``--lang`` or
``PLEDGELINE_LANG`` (``fr`` unless set). Machine output (``--json``) is not translated."""

from __future__ import annotations

import os
from typing import Protocol

from app.i18n.catalogues import DEFAULT_LANGUAGE, translate
from app.i18n.negotiation import supported

ENV = "PLEDGELINE_LANG"


class Refusal(Protocol):
    message_id: str
    params: dict[str, object]
    field: str | None


def cli_language() -> str:
    """``--lang`` (which sets the variable), else ``PLEDGELINE_LANG``, else French.

    Read from the environment rather than the settings: a command refused for a bad
    setting still says so in the operator's language."""
    return supported(os.environ.get(ENV)) or DEFAULT_LANGUAGE


def say(message_id: str, **params: object) -> str:
    """``message_id`` in the CLI's language, its ``{placeholders}`` filled in."""
    return translate(cli_language(), message_id, params)


def refused(exc: Refusal) -> str:
    """The line a command prints when the app refuses (an ``AppError``)."""
    message = translate(cli_language(), exc.message_id, exc.params)
    if exc.field:
        return say("refused: {message} ({field})", message=message, field=exc.field)
    return say("refused: {message}", message=message)
