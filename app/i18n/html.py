"""The pages' own texts in the reader's language, translated as the page is served.

The pages are static HTML written in English. Every text between tags and every
``title``, ``placeholder``, ``aria-label`` and ``alt`` attribute is a message id
(its whitespace folded to single spaces), so a page needs no markup to be
translated and its French arrives with the HTML, before any script runs (no
English flash, and a page without script still reads French). Texts with no
letter (a dash, a figure) and what an element marked ``translate="no"`` holds are
left as they are; scripts and styles are never touched.

``extraction.py`` finds the same ids with ``message_ids`` for the catalogue test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

from app.i18n.catalogues import translations

_TRANSLATED_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
# A tag, a comment, or a script/style element whole (its body is code, not text).
_MARKUP = re.compile(
    r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>|<[^>]*>",
    re.DOTALL | re.IGNORECASE,
)
_ATTRIBUTE = re.compile(r"\s(" + "|".join(_TRANSLATED_ATTRIBUTES) + r')="([^"]*)"', re.IGNORECASE)
_NO_TRANSLATE = re.compile(r'\stranslate="no"', re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass(frozen=True)
class Segment:
    """Where a translatable text sits in the page: ``html[start:end]``, escaped."""

    start: int
    end: int
    message_id: str


def _message_id(escaped: str) -> str | None:
    text = " ".join(html.unescape(escaped).split())
    return text if _LETTER.search(text) else None


def _tag_name(tag: str) -> str:
    match = re.match(r"</?\s*([A-Za-z][A-Za-z0-9-]*)", tag)
    return match.group(1).lower() if match else ""


def segments(page: str) -> Iterator[Segment]:
    """The page's translatable texts and attributes, in order."""
    position = 0
    # Depth of open elements inside one marked translate="no" (0: translating).
    untranslated_depth = 0
    for markup in _MARKUP.finditer(page):
        if untranslated_depth == 0:
            yield from _text_segment(page, position, markup.start())
        position = markup.end()
        tag = markup.group(0)
        if tag.startswith("<!--") or markup.group(1):
            continue
        name = _tag_name(tag)
        closing = tag.startswith("</")
        self_closing = tag.endswith("/>") or name in _VOID
        if untranslated_depth:
            if closing:
                untranslated_depth -= 1
            elif not self_closing:
                untranslated_depth += 1
            continue
        if closing:
            continue
        if _NO_TRANSLATE.search(tag):
            untranslated_depth = 0 if self_closing else 1
            continue
        for attribute in _ATTRIBUTE.finditer(tag):
            message_id = _message_id(attribute.group(2))
            if message_id:
                start = markup.start() + attribute.start(2)
                yield Segment(start, start + len(attribute.group(2)), message_id)
    if untranslated_depth == 0:
        yield from _text_segment(page, position, len(page))


def _text_segment(page: str, start: int, end: int) -> Iterator[Segment]:
    raw = page[start:end]
    message_id = _message_id(raw)
    if message_id is None:
        return
    # Keep the text's surrounding whitespace (the page's layout) as it was.
    lead = len(raw) - len(raw.lstrip())
    trail = len(raw) - len(raw.rstrip())
    yield Segment(start + lead, end - trail, message_id)


def message_ids(page: str) -> list[str]:
    return [segment.message_id for segment in segments(page)]


def translate_page(page: str, language: str) -> str:
    """The page with each text replaced by its translation (an id without one stays)."""
    catalogue = translations(language)
    parts: list[str] = []
    position = 0
    for segment in segments(page):
        translated = catalogue.gettext(segment.message_id)
        if translated == segment.message_id:
            continue
        parts.append(page[position : segment.start])
        parts.append(html.escape(translated, quote=True))
        position = segment.end
    parts.append(page[position:])
    return "".join(parts)
