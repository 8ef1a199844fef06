"""The gettext catalogues, compiled from their ``.po`` on first use.

No ``.mo`` is committed or built: Babel reads each ``.po`` and writes its ``.mo``
into memory once per process (a fresh clone and an installed wheel both work, and
a translator's edit shows at the next start without a build step).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"


def N_(message_id: str) -> str:
    """Marks a message id for extraction where it is not raised or translated in place."""
    return message_id


class Message:
    """A message id with its ``{placeholder}`` values, put into words when a language
    is known: a reason kept for later (a refused file's problems, translated as the
    refusal is answered), or a value that is itself a sentence (``translate`` renders
    it in the language of the sentence around it). ``str()`` is the English text."""

    __slots__ = ("id", "params")

    def __init__(self, message_id: str, /, **params: object) -> None:
        self.id = message_id
        self.params: dict[str, Any] = params

    def text(self, language: str = "en") -> str:
        return translate(language, self.id, self.params)

    def __str__(self) -> str:
        return self.text("en")

    def __repr__(self) -> str:
        return f"Message({self.id!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.id, self.params) == (other.id, other.params)

    def __hash__(self) -> int:
        return hash(self.id)


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def read_catalog(language: str) -> Catalog:
    with po_path(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


@cache
def translations(language: str) -> gettext.GNUTranslations | gettext.NullTranslations:
    """The language's compiled catalogue (English ids pass through when not found)."""
    if language not in LANGUAGES:
        return gettext.NullTranslations()
    mo = io.BytesIO()
    write_mo(mo, read_catalog(language), use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def translate(language: str, message_id: str, params: Mapping[str, object] | None = None) -> str:
    """The text of ``message_id`` in ``language`` with its ``{placeholders}`` filled in.

    A value that is a :class:`Message` is put into words in ``language`` too.
    An id the catalogue lacks reads as itself: a message raised by new code before
    its translation lands still says something (in English).
    """
    text = translations(language).gettext(message_id)
    if not params:
        return text
    if any(isinstance(value, Message) for value in params.values()):
        params = {
            name: value.text(language) if isinstance(value, Message) else value
            for name, value in params.items()
        }
    for candidate in (text, message_id):
        try:
            return candidate.format(**params)
        except (KeyError, IndexError, ValueError):
            # A translation naming a placeholder the code does not give: the English
            # text; and if that cannot be filled in either, the id as it is.
            continue
    return message_id


def page_catalogue(language: str) -> dict[str, str]:
    """Every translated entry of the language, id to text, for the pages' script."""
    return {
        str(message.id): str(message.string)
        for message in read_catalog(language)
        if message.id and isinstance(message.id, str) and message.string
    }
