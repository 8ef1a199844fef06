"""The TrueType fonts of the PDFs (tax receipts, hours attestations): a font with
its Bold sibling registered once per process, or Helvetica when it is missing
(reportlab's built-in, which has no glyph beyond Latin-1)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

log = logging.getLogger(__name__)


@lru_cache
def fonts(font_path: str, family: str) -> tuple[str, str]:
    """(regular, bold) font names: ``font_path`` and its ``-Bold`` sibling, registered
    as ``family`` and ``family-Bold``; Helvetica if the file is not there."""
    regular = Path(font_path) if font_path else None
    if regular is None or not regular.is_file():
        if font_path:
            log.warning("PDF font %s not found; using Helvetica", font_path)
        return "Helvetica", "Helvetica-Bold"
    bold = regular.with_name(regular.stem + "-Bold" + regular.suffix)
    pdfmetrics.registerFont(TTFont(family, str(regular)))
    if bold.is_file():
        pdfmetrics.registerFont(TTFont(f"{family}-Bold", str(bold)))
        return family, f"{family}-Bold"
    return family, family
