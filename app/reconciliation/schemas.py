"""Request and response bodies of the reconciliation API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.cardguard import CardGuarded
from app.errors import ErrorOut
from app.reconciliation.csvfile import DATE_FORMATS

Header = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,39}$")]


class Strict(CardGuarded):
    model_config = ConfigDict(extra="forbid")


class ColumnsIn(Strict):
    """Which header names the export uses for each field. ``date`` and one of
    ``amount`` (signed) or ``credit`` (a bank's credit column) are required."""

    date: Header
    amount: Header | None = None
    credit: Header | None = None
    reference: Header | None = None
    payer: Header | None = None
    transaction_id: Header | None = None
    currency: Header | None = None

    @model_validator(mode="after")
    def _complete(self) -> ColumnsIn:
        if (self.amount is None) == (self.credit is None):
            raise ValueError("map exactly one of amount and credit")
        if self.reference is None and self.payer is None:
            raise ValueError("map the reference (label) or the payer column, or both")
        given = [v for v in self.model_dump().values() if v is not None]
        if len({v.casefold() for v in given}) != len(given):
            raise ValueError("two fields name the same column")
        return self


class SourceIn(Strict):
    kind: Literal["provider", "bank"] = "bank"
    delimiter: Literal[",", ";", "\t", "|"] = ","
    decimal_separator: Literal[".", ","] = "."
    encoding: Literal["utf-8", "cp1252"] = "utf-8"
    date_format: str = "%Y-%m-%d"
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    columns: ColumnsIn

    @field_validator("date_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in DATE_FORMATS:
            raise ValueError(f"one of {', '.join(DATE_FORMATS)}")
        return value

    @model_validator(mode="after")
    def _provider_ids(self) -> SourceIn:
        if self.kind == "provider" and self.columns.transaction_id is None:
            raise ValueError("a provider's export needs its transaction_id column")
        return self


class SourceOut(BaseModel):
    id: int
    name: str
    kind: str
    delimiter: str
    decimal_separator: str
    encoding: str
    date_format: str
    currency: str
    columns: dict[str, str]
    updated_at: dt.datetime


class FileProblemOut(BaseModel):
    line: int | None
    column: str | None
    reason: str


class FileRefusedOut(ErrorOut):
    """A file refused whole (``bad_file``): its first problems, and how many more.
    Other refusals of the route (a bad query parameter) have no problems."""

    problems: list[FileProblemOut] = Field(default_factory=list)
    more_problems: int = 0


class ImportOut(BaseModel):
    id: int
    source: str
    campaign_id: int
    filename: str
    actor: str
    imported_at: dt.datetime
    lines: int
    recorded: int
    already_recorded: int
    unmatched: int
    ignored: int
    duplicates: int
    masked: int
    recorded_minor: int


class PledgeBrief(BaseModel):
    id: int
    reference: str
    name: str
    amount_minor: int
    paid_minor: int
    currency: str
    status: str
    frequency: str


class SuggestionOut(BaseModel):
    confidence: int
    pledge: PledgeBrief


class LineOut(BaseModel):
    id: int
    import_id: int
    line_no: int
    booked_at: dt.datetime
    amount_minor: int
    currency: str
    label: str
    payer: str
    transaction_id: str | None
    status: str
    note: str
    method: str | None
    confidence: int
    difference_minor: int
    reviewed_at: dt.datetime | None
    pledge: PledgeBrief | None
    suggestions: list[SuggestionOut]


class MatchIn(Strict):
    reference: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=16)]
