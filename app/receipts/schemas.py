"""Request and response bodies of the receipts API. Text is card-guarded like every body."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

from app.cardguard import CardGuarded

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Long = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Article = Literal["200", "238 bis", "978"]


class Strict(CardGuarded):
    model_config = ConfigDict(extra="forbid")


class OrganisationIn(Strict):
    """The charity as its receipts name it (Cerfa n° 11580, "Bénéficiaire des versements")."""

    name: Name
    address: Long = ""
    postcode: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] = ""
    city: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    purpose: Long = ""
    siren: Annotated[str, StringConstraints(pattern=r"^[0-9 ]{0,20}$")] = ""
    rna: Annotated[str, StringConstraints(pattern=r"^(W[0-9A-Z]{9})?$")] = ""
    legal_status: Long = ""
    tax_articles: list[Article] = ["200", "238 bis"]
    signatory_name: Short = ""
    signatory_title: Short = ""
    signature_place: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class OrganisationPatch(Strict):
    name: Name | None = None
    address: Long | None = None
    postcode: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    purpose: Long | None = None
    siren: Annotated[str, StringConstraints(pattern=r"^[0-9 ]{0,20}$")] | None = None
    rna: Annotated[str, StringConstraints(pattern=r"^(W[0-9A-Z]{9})?$")] | None = None
    legal_status: Long | None = None
    tax_articles: list[Article] | None = None
    signatory_name: Short | None = None
    signatory_title: Short | None = None
    signature_place: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None
    ) = None


class OrganisationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    address: str
    postcode: str
    city: str
    purpose: str
    siren: str
    rna: str
    legal_status: str
    tax_articles: list[str]
    signatory_name: str
    signatory_title: str
    signature_place: str


class AttachIn(Strict):
    organisation_id: int


class IssueIn(Strict):
    campaign_id: int
    # E-mail every live receipt not sent yet, once the new ones are issued.
    send: StrictBool = False


class SendIn(Strict):
    """Send (again) to the donor's address, or to this one."""

    to: (
        Annotated[
            str,
            StringConstraints(
                strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
            ),
        ]
        | None
    ) = None


class ReceiptOut(BaseModel):
    id: int
    number: str
    year: int
    sequence: int
    organisation_id: int
    campaign_id: int
    pledge_reference: str
    donor_name: str
    donor_email: str
    amount_minor: int
    currency: str
    paid_at: dt.datetime
    status: str
    issued_at: dt.datetime
    cancelled_at: dt.datetime | None
    cancel_reason: str | None
    copies: int
    sent_at: dt.datetime | None
    sent_to: str | None


class BatchOut(BaseModel):
    campaign_id: int
    waiting: int
    issued: int
    numbers: list[str]
    sent: int
    send_failed: int
    without_email: int
