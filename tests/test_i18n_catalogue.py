"""Every message id the code and the pages use has a French entry (app/i18n)."""

from __future__ import annotations

import ast
import re
import string

from babel.messages.catalog import Catalog

from app.i18n.catalogues import read_catalog
from app.i18n.cli import missing_french
from app.i18n.extraction import APP_DIR, KEYWORDS, code_message_ids, page_message_ids, template


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_id_of_the_code_and_pages_has_a_french_entry() -> None:
    ids = template()
    assert len(ids) > 150  # the extractor finds the refusals (it would pass on none)
    missing = missing_french(ids)
    assert missing == [], "no French for:\n" + "\n".join(missing)


def test_the_check_fails_on_an_id_without_french() -> None:
    ids = template()
    ids.add("a message nobody has translated yet")
    assert missing_french(ids) == ["a message nobody has translated yet"]


def test_the_extractor_reads_refusals_markers_and_translate_calls() -> None:
    found = code_message_ids()
    # A refusal with a placeholder, a marker (N_), a CLI line (say), an export header.
    assert "campaign {campaign_id} not found" in found
    assert "a French postcode has five digits" in found
    assert "{count} pledges written to {out}" in found
    assert "pledge_id" in found
    # No f-string slipped in as an id: its values would be part of the id.
    assert not [i for i in found if re.search(r"\{[^}]*[.(\[]", i)]


def test_french_entries_keep_the_placeholders_of_their_id() -> None:
    french = read_catalog("fr")
    wrong = [
        f"{m.id!r} -> {m.string!r}"
        for m in french
        if m.id and m.string and _placeholders(str(m.id)) != _placeholders(str(m.string))
    ]
    assert wrong == []


def test_the_english_catalogue_has_every_id_too() -> None:
    # Empty English entries read as their (English) id; the file lists them all so
    # a translator sees every text (``pledgeline i18n update``).
    english: Catalog = read_catalog("en")
    missing = [str(m.id) for m in template() if m.id and english.get(m.id) is None]
    assert missing == []


def test_page_ids_are_read_from_the_t_calls_of_page_scripts() -> None:
    # i18n.js's own example call (the pages adopt t() next; their ids join the check).
    found = page_message_ids()
    assert found["campaign {campaign_id} not found"] == ["app/web/static/i18n.js:9"]
    assert set(found) <= {m.id for m in template()}


def test_no_refusal_builds_its_message_with_an_f_string() -> None:
    # An f-string id carries its values: no catalogue entry can ever match it.
    refusals = {name for name, spec in KEYWORDS.items() if spec is None and name[0].isupper()}
    found = []
    for path in sorted(APP_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in refusals and isinstance(node.args[0], ast.JoinedStr):
                found.append(f"{path.relative_to(APP_DIR.parent)}:{node.lineno}")
    assert found == []
