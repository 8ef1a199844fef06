"""Every message id the code uses, found by Babel's extractor (``pledgeline i18n``).

The ids are the first argument of the refusals (``Invalid("...")``...), of
``translate(language, "...")``, of ``Message("...")`` (a reason put into words later)
and of the ``N_("...")`` marker; an f-string is not an
id (its values go in ``{placeholders}`` given as keyword arguments instead).
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

from app.i18n.html import segments

APP_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = APP_DIR / "web" / "static"

# Babel keyword specs: the function's name and which argument is the id (1-based).
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "N_": None,
    "_": None,
    "gettext": None,
    "AppError": None,
    "NotFound": None,
    "Conflict": None,
    "Invalid": None,
    "Unauthorized": None,
    "Forbidden": None,
    "PayloadTooLarge": None,
    "TooManyAttempts": None,
    "MailFailed": None,
    "say": None,
    "Message": None,
    "translate": (2,),
    "translated_body": (3,),
}
# The pages' script: t("...") and t('...') with i18n.js, and N_("...") marking an id
# written before it is shown.
# A script's own markup: a template literal after /* html */ (translateTree in i18n.js).
_SCRIPT_MARKUP = re.compile(r"/\*\s*html\s*\*/\s*`([^`]*)`")
_PAGE_CALL = re.compile(r"""\b(?:t|N_)\(\s*(["'])((?:\\.|(?!\1).)+)\1""")


def code_message_ids() -> dict[str, list[str]]:
    """Message id -> where it is used (``app/x.py:12``), from the Python code."""
    found: dict[str, list[str]] = {}
    method_map = [("**.py", "python")]
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(APP_DIR), method_map=method_map, keywords=KEYWORDS
    ):
        if isinstance(message, str) and message:
            found.setdefault(message, []).append(f"app/{filename}:{lineno}")
    return found


def page_message_ids() -> dict[str, list[str]]:
    """Message id -> where, from the pages' HTML (every text: ``html.py``) and their
    scripts that call ``t(...)`` (i18n.js)."""
    found: dict[str, list[str]] = {}
    for path in sorted(STATIC_DIR.glob("*.html")):
        page = path.read_text(encoding="utf-8")
        for segment in segments(page):
            number = page.count("\n", 0, segment.start) + 1
            found.setdefault(segment.message_id, []).append(f"app/web/static/{path.name}:{number}")
    for path in sorted(STATIC_DIR.glob("*.js")) + sorted(STATIC_DIR.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        if "i18n.js" not in text and path.name != "i18n.js":
            continue
        # Markup a script writes itself, marked /* html */, read as a page is.
        for template in _SCRIPT_MARKUP.finditer(text):
            for segment in segments(template.group(1)):
                number = text.count("\n", 0, template.start(1) + segment.start) + 1
                found.setdefault(segment.message_id, []).append(
                    f"app/web/static/{path.name}:{number}"
                )
        for number, line in enumerate(text.splitlines(), start=1):
            for match in _PAGE_CALL.finditer(line):
                found.setdefault(match.group(2), []).append(f"app/web/static/{path.name}:{number}")
    return found


def template() -> Catalog:
    """The ``.pot``: every id of the code and the pages, with where each is used."""
    catalog = Catalog(project="Pledgeline", domain="messages")
    for ids in (code_message_ids(), page_message_ids()):
        for message_id, places in ids.items():
            catalog.add(
                message_id,
                locations=[
                    (place.rsplit(":", 1)[0], int(place.rsplit(":", 1)[1])) for place in places
                ],
            )
    return catalog
