"""Request and response bodies of the pledge API.

Text fields are only length-checked here; their format (email, postcode...) is
checked by the service *after* the card-number guard, so a refused value is
never compared, echoed or stored. Amounts are strict integers (minor units):
``12.5``, ``"12"`` and ``true`` are refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from app.cardguard import CardGuarded

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Long = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
FrequencyIn = Literal["one_off", "monthly"]
ChannelIn = Literal["web_link", "cheque", "bank_transfer"]
CancelReasonIn = Literal["fake", "duplicate", "bad_contact", "donor_request", "abandoned"]

# The donor and pledge fields a volunteer fills in; shared by create and correct.
TEXT_FIELDS = (
    "first_name",
    "last_name",
    "address",
    "postcode",
    "city",
    "country",
    "email",
    "phone",
    "note",
)


_BARE_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    # Pydantic would read a bare number as epoch seconds: ``until=0.5`` is a typo, not 1970.
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        raise ValueError("an ISO 8601 date and time, e.g. 2026-12-05T20:00:00+00:00")
    return value


# A time in a query string (``since``, ``until``): ISO 8601, never a bare number.
Moment = Annotated[dt.datetime, BeforeValidator(_iso_only)]


class Strict(CardGuarded):
    """A request body: unknown fields refused, card data refused in any field."""

    model_config = ConfigDict(extra="forbid")


class PledgeIn(Strict):
    """A new pledge. ``call_id`` ties it to the call (and so to the campaign, queue
    and agent); a supervisor or admin may instead give ``campaign_id`` alone."""

    call_id: int | None = None
    campaign_id: int | None = None
    first_name: Short = ""
    last_name: Short = ""
    address: Long = ""
    postcode: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] = ""
    city: Short = ""
    country: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2)] = "FR"
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] = ""
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = ""
    amount_minor: StrictInt
    currency: str | None = None
    frequency: FrequencyIn = "one_off"
    channel: ChannelIn = "web_link"
    consent_contact: StrictBool = False
    consent_tax_receipt: StrictBool = False
    # "May we show your first name and town on air?" (the tote board).
    consent_board: StrictBool = False
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class PledgePatch(Strict):
    """A correction: only the fields given change; each change is audited."""

    first_name: Short | None = None
    last_name: Short | None = None
    address: Long | None = None
    postcode: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None = None
    city: Short | None = None
    country: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2)] | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    amount_minor: StrictInt | None = None
    currency: str | None = None
    frequency: FrequencyIn | None = None
    channel: ChannelIn | None = None
    consent_contact: StrictBool | None = None
    consent_tax_receipt: StrictBool | None = None
    consent_board: StrictBool | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class ApproveIn(Strict):
    """A reviewer's approval of a pledge flagged for review, with what they checked."""

    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


class CancelIn(Strict):
    reason: CancelReasonIn


class PaymentIn(Strict):
    """A payment entered by an organiser (a bank transfer or cheque received...)."""

    amount_minor: Annotated[StrictInt, Field(ge=1)]
    currency: str | None = None
    provider_payment_id: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-:.]{1,128}$")] | None
    ) = None
    received_at: dt.datetime | None = None


class PaymentCancelIn(Strict):
    """Why a payment no longer counts: "refund", "bounced cheque", "charge-back"..."""

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class PaymentOut(BaseModel):
    id: int
    amount_minor: int
    currency: str
    provider_payment_id: str | None
    source: str
    received_at: dt.datetime
    cancelled_at: dt.datetime | None
    cancel_reason: str | None


class ProviderPaymentIn(Strict):
    """The payment provider's webhook: a payment against a pledge reference."""

    type: Literal["payment.succeeded"] = "payment.succeeded"
    payment_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-:.]{1,128}$")]
    reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{4,16}$")]
    # Bounded here: this webhook reads its own body, past the app-wide 64-bit check.
    amount_minor: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    paid_at: dt.datetime | None = None


class PledgeOut(BaseModel):
    id: int
    reference: str
    campaign_id: int
    call_id: int | None
    agent_id: int | None
    queue_id: int | None
    first_name: str
    last_name: str
    address: str
    postcode: str
    city: str
    country: str
    email: str
    phone: str
    departement: str | None
    amount_minor: int
    currency: str
    frequency: str
    channel: str
    consent_contact: bool
    consent_tax_receipt: bool
    consent_board: bool
    flagged_for_review: bool
    time_slot: str | None
    note: str
    status: str
    cancel_reason: str | None
    paid_minor: int
    payment_link: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    link_sent_at: dt.datetime | None
    paid_at: dt.datetime | None


class AuditOut(BaseModel):
    at: dt.datetime
    actor: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]


class TotalsRow(BaseModel):
    key: str | None
    label: str
    count: int
    promised_minor: int
    paid_minor: int
    average_minor: int
    # paid / promised, 0..1 (None when nothing is promised).
    fulfilment_rate: float | None


class TotalsOut(BaseModel):
    campaign_id: int
    currency: str
    overall: TotalsRow
    by_slot: list[TotalsRow]
    by_hour: list[TotalsRow]
    by_queue: list[TotalsRow]
    by_agent: list[TotalsRow]
    by_partner: list[TotalsRow]
    by_departement: list[TotalsRow]


class BoardName(BaseModel):
    """A donor who consented to be named on air: first name and town, nothing else."""

    first_name: str
    city: str


class BoardOut(BaseModel):
    """What the public tote board shows: campaign figures, and the first names and
    towns of the latest donors who consented (``consent_board``)."""

    campaign_id: int
    campaign: str
    currency: str
    count: int
    promised_minor: int
    paid_minor: int
    average_minor: int
    last_pledge_minor: int | None
    goal_minor: int | None
    latest: list[BoardName]
    updated_at: dt.datetime
