"""``pledgeline i18n extract|update|compile|check``: the translators' commands.

extract  writes ``app/i18n/locale/messages.pot`` (every id of the code and pages);
update   merges it into each ``.po`` (new ids empty, translations kept, gone ids dropped);
compile  writes each ``.mo`` beside its ``.po`` (not needed to run: the app compiles
         in memory; for gettext tools). The ``.mo`` are not committed;
check    lists the ids French lacks (exit 1 if any).
"""

from __future__ import annotations

import argparse
import sys

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from app.i18n.catalogues import DOMAIN, LANGUAGES, LOCALE_DIR, po_path
from app.i18n.console import say

TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["extract", "update", "compile", "check"])


def missing_french(template: Catalog) -> list[str]:
    with po_path("fr").open("rb") as po:
        french = read_po(po, locale="fr")
    return sorted(
        str(m.id)
        for m in template
        if m.id and (french.get(m.id) is None or not french[m.id].string)
    )


def run(args: argparse.Namespace) -> int:
    from app.i18n.extraction import template as build_template

    if args.action == "compile":
        for language in LANGUAGES:
            with po_path(language).open("rb") as po:
                catalog = read_po(po, locale=language)
            with po_path(language).with_suffix(".mo").open("wb") as mo:
                write_mo(mo, catalog)
        return 0
    template = build_template()
    if args.action == "extract":
        with TEMPLATE.open("wb") as pot:
            write_po(pot, template, width=100, sort_output=True)
        print(say("{count} message ids written to {out}", count=len(template), out=TEMPLATE))
        return 0
    if args.action == "update":
        for language in LANGUAGES:
            path = po_path(language)
            with path.open("rb") as po:
                catalog = read_po(po, locale=language)
            catalog.update(template, no_fuzzy_matching=True)
            with path.open("wb") as po:
                write_po(po, catalog, width=100, sort_output=True, ignore_obsolete=True)
        return 0
    missing = missing_french(template)
    for message_id in missing:
        print(message_id, file=sys.stderr)
    print(say("{count} message ids without French", count=len(missing)))
    return 1 if missing else 0
