"""The receipt as a PDF (reportlab): the sections and wording of Cerfa n° 11580*04,
"Reçu au titre des dons à certains organismes d'intérêt général".

Drawn with DejaVu Sans when the font is installed (every Latin, Greek and Cyrillic
name prints), else with the PDF's built-in Helvetica (Western European names only).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas

from app.pdf_fonts import fonts
from app.receipts.models import TAX_ARTICLES
from app.receipts.wording import PAYMENT_MODES

log = logging.getLogger(__name__)

CERFA = "N° 11580*04"
TITLE = "Reçu au titre des dons à certains organismes d'intérêt général"
DUPLICATA = "DUPLICATA"


@dataclass(frozen=True)
class ReceiptDocument:
    """Everything printed, already worded (``service`` builds it from a receipt row)."""

    number: str
    duplicata: bool
    organisation_name: str
    organisation_address: str
    organisation_postcode: str
    organisation_city: str
    organisation_purpose: str
    organisation_siren: str
    organisation_rna: str
    organisation_status: str
    tax_articles: tuple[str, ...]
    donor_last_name: str
    donor_first_name: str
    donor_address: str
    donor_postcode: str
    donor_city: str
    amount_figures: str
    amount_words: str
    payment_date: str
    payment_mode: str  # one of PAYMENT_MODES' values
    signatory_name: str
    signatory_title: str
    signature_place: str
    signature_date: str


class _Page:
    """A cursor down an A4 page: lines, wrapped paragraphs, boxes, tick boxes."""

    LEFT = 18 * mm
    WIDTH = A4[0] - 36 * mm

    def __init__(self, pdf: canvas.Canvas, regular: str, bold: str) -> None:
        self.pdf, self.regular, self.bold = pdf, regular, bold
        self.y = A4[1] - 18 * mm

    def line(self, text: str, *, size: float = 9.5, bold: bool = False, indent: float = 0) -> None:
        self.pdf.setFont(self.bold if bold else self.regular, size)
        self.pdf.drawString(self.LEFT + indent, self.y, text)
        self.y -= size * 1.45

    def wrapped(self, label: str, text: str, *, size: float = 9.5) -> None:
        """``label`` in bold (if any), then ``text`` wrapped to the page width (never cut)."""
        font = self.regular
        width = self.WIDTH - (pdfmetrics.stringWidth(label + " ", self.bold, size) if label else 0)
        words, lines, current = text.split(), [], ""
        for word in words:
            trial = f"{current} {word}".strip()
            if current and pdfmetrics.stringWidth(trial, font, size) > width:
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
        self.pdf.setFont(self.bold, size)
        self.pdf.drawString(self.LEFT, self.y, label)
        indent = pdfmetrics.stringWidth(label + " ", self.bold, size) if label else 0
        self.pdf.setFont(font, size)
        for text_line in lines:
            self.pdf.drawString(self.LEFT + indent, self.y, text_line)
            self.y -= size * 1.45

    def tick(self, label: str, ticked: bool, *, indent: float = 4 * mm) -> None:
        """A Cerfa tick box: ``[X] label`` or ``[ ] label`` (the mark is text, so it reads back)."""
        self.line(f"[{'X' if ticked else ' '}] {label}", indent=indent)

    def heading(self, text: str) -> None:
        self.y -= 2 * mm
        self.pdf.setFillGray(0.9)
        self.pdf.rect(self.LEFT - 2, self.y - 3, self.WIDTH + 4, 13, stroke=0, fill=1)
        self.pdf.setFillGray(0)
        self.line(text, size=10.5, bold=True)
        self.y -= 1 * mm


def render(doc: ReceiptDocument, *, font_path: str = "") -> bytes:
    """The receipt as PDF bytes (one A4 page)."""
    regular, bold = fonts(font_path, "ReceiptSans")
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    pdf.setTitle(f"Reçu fiscal {doc.number}")
    pdf.setAuthor(doc.organisation_name)
    pdf.setSubject(f"Cerfa {CERFA}")
    page = _Page(pdf, regular, bold)

    page.line(f"Cerfa {CERFA}", size=9)
    page.line(f"Numéro d'ordre du reçu : {doc.number}", size=11, bold=True)
    if doc.duplicata:
        pdf.saveState()
        pdf.setFont(bold, 22)
        pdf.setFillColorRGB(0.75, 0.1, 0.1)
        pdf.drawRightString(A4[0] - 18 * mm, A4[1] - 24 * mm, DUPLICATA)
        pdf.restoreState()
    page.y -= 2 * mm
    page.line(TITLE, size=13, bold=True)
    page.line("(articles 200, 238 bis et 978 du code général des impôts)", size=9)

    page.heading("Bénéficiaire des versements")
    page.wrapped("Nom ou dénomination :", doc.organisation_name)
    page.wrapped("Adresse :", doc.organisation_address)
    page.wrapped("Code postal et commune :", f"{doc.organisation_postcode} {doc.organisation_city}")
    page.wrapped("Objet :", doc.organisation_purpose)
    if doc.organisation_siren:
        page.wrapped("SIREN :", doc.organisation_siren)
    if doc.organisation_rna:
        page.wrapped("RNA :", doc.organisation_rna)
    page.wrapped("Qualité :", doc.organisation_status)

    page.heading("Donateur")
    page.wrapped("Nom :", doc.donor_last_name)
    page.wrapped("Prénoms :", doc.donor_first_name)
    page.wrapped("Adresse :", doc.donor_address)
    page.wrapped("Code postal et commune :", f"{doc.donor_postcode} {doc.donor_city}")

    page.heading("Versement")
    page.wrapped(
        "",
        "Le bénéficiaire reconnaît avoir reçu au titre des dons et versements ouvrant droit "
        "à réduction d'impôt la somme de :",
    )
    page.line(doc.amount_figures, size=12, bold=True, indent=4 * mm)
    page.wrapped("Somme en toutes lettres :", doc.amount_words)
    page.wrapped("Date du versement ou du don :", doc.payment_date)
    page.y -= 1 * mm
    page.wrapped(
        "",
        "Le bénéficiaire certifie sur l'honneur que les dons et versements qu'il reçoit "
        "ouvrent droit à la réduction d'impôt prévue à l'article :",
    )
    for article in TAX_ARTICLES:
        page.tick(f"{article} du CGI", article in doc.tax_articles)
    page.line("Forme du don :", bold=True)
    page.tick("Déclaration de don manuel", True)
    page.line("Nature du don :", bold=True)
    page.tick("Numéraire", True)
    page.line("Mode de versement du don :", bold=True)
    for mode in dict.fromkeys(PAYMENT_MODES.values()):
        page.tick(mode, mode == doc.payment_mode)

    page.heading("Date et signature")
    page.line(f"Fait à {doc.signature_place}, le {doc.signature_date}")
    page.line(doc.signatory_name, bold=True)
    page.line(doc.signatory_title)
    pdf.showPage()
    pdf.save()
    return out.getvalue()
