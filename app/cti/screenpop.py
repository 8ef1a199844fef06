"""Screen-pop assembly: what the volunteer's screen shows about the caller.

Pure functions, no I/O: the service (``app.cti.service``) gathers the inputs.
Each form field says where its value came from and whether the volunteer should
confirm it with the caller. Precedence, field by field (docs/directory.md):

* **name** (first and last together) and **address** (lines, postcode, city
  together): the hotline's own pledge records first (the donor gave and confirmed
  them), then the directory. A group is taken whole from one source, never
  mixed (a first name from one source and a last name from another would invent
  a person).
* **email**: pledge records, then the directory.
* **phone**: the caller id (the number the call comes from), then the number on
  the pledge records.

``confirm`` is true for values the caller never gave us (directory, caller id)
and false for values from their own pledges. A withheld or unusable number
gives an empty form and a note asking for the details.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

import phonenumbers

from app.cti.directory import DirectoryResult, Status

SOURCE_PLEDGES = "pledges"
SOURCE_DIRECTORY = "directory"
SOURCE_CALLER_ID = "caller_id"

FIELDS = ("first_name", "last_name", "address_lines", "postcode", "city", "email", "phone")


@dataclass(frozen=True)
class CallHistory:
    """Earlier calls from the same number to the same campaign."""

    earlier_calls: int = 0
    last_call_at: dt.datetime | None = None


@dataclass(frozen=True)
class ReturningDonor:
    """What the hotline's own pledge records say about a number (pledges module, later).

    Money in integer minor units with its currency.
    """

    first_name: str | None
    last_name: str | None
    address_lines: tuple[str, ...]
    postcode: str | None
    city: str | None
    email: str | None
    phone: str | None
    pledges: int
    total_minor: int
    currency: str
    last_pledge_at: dt.datetime | None

    @property
    def has_name(self) -> bool:
        return bool(self.first_name or self.last_name)

    @property
    def has_address(self) -> bool:
        return bool(self.address_lines or self.postcode or self.city)


def _field(value: Any, source: str | None, *, confirm: bool) -> dict[str, Any]:
    return {"value": value, "source": source, "confirm": confirm}


def _empty(name: str) -> dict[str, Any]:
    return _field([] if name == "address_lines" else None, None, confirm=False)


def empty_fields() -> dict[str, dict[str, Any]]:
    return {name: _empty(name) for name in FIELDS}


@functools.lru_cache(maxsize=4096)
def display_number(e164: str | None) -> str | None:
    """The number as a volunteer reads it: national format at home, international abroad."""
    if not e164:
        return None
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == 33
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    text: str = phonenumbers.format_number(parsed, fmt)
    return text


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _note(
    status: Status,
    issue: str | None,
    donor: ReturningDonor | None,
    history: CallHistory,
) -> str:
    parts: list[str] = []
    if status is Status.SKIPPED_WITHHELD or issue == "withheld":
        return "Number withheld: ask for details."
    if status is Status.SKIPPED_INVALID or issue == "invalid":
        return "Caller number not recognised: ask for details."
    if donor is not None:
        who = " ".join(p for p in (donor.first_name, donor.last_name) if p) or "this donor"
        parts.append(
            f"Returning donor ({_plural(donor.pledges, 'pledge')}): "
            f"check you are speaking to {who}."
        )
    elif status is Status.FOUND:
        parts.append("Details from the phone directory: confirm them with the caller.")
    elif status is Status.NOT_FOUND:
        parts.append("Number not in the directory: ask for details.")
    elif status in (Status.TIMEOUT, Status.ERROR, Status.BREAKER_OPEN):
        parts.append("Directory unavailable: ask for details.")
    else:  # no directory configured
        parts.append("Ask for details.")
    if history.earlier_calls:
        parts.append(f"Called before: {_plural(history.earlier_calls, 'earlier call')}.")
    return " ".join(parts)


def assemble(
    *,
    number: str | None,
    issue: str | None,
    directory: DirectoryResult,
    history: CallHistory,
    donor: ReturningDonor | None = None,
) -> dict[str, Any]:
    """The screen pop: ``{caller, fields, history, status, returning_donor, cached, note}``."""
    fields = empty_fields()
    usable = number is not None and issue is None
    if usable:
        # Name and address are taken whole from the best source that has them.
        if donor is not None and donor.has_name:
            fields["first_name"] = _field(donor.first_name, SOURCE_PLEDGES, confirm=False)
            fields["last_name"] = _field(donor.last_name, SOURCE_PLEDGES, confirm=False)
        elif directory.found:
            fields["first_name"] = _field(directory.first_name, SOURCE_DIRECTORY, confirm=True)
            fields["last_name"] = _field(directory.last_name, SOURCE_DIRECTORY, confirm=True)
        if donor is not None and donor.has_address:
            fields["address_lines"] = _field(
                list(donor.address_lines), SOURCE_PLEDGES, confirm=False
            )
            fields["postcode"] = _field(donor.postcode, SOURCE_PLEDGES, confirm=False)
            fields["city"] = _field(donor.city, SOURCE_PLEDGES, confirm=False)
        elif directory.found and directory.has_address:
            fields["address_lines"] = _field(
                list(directory.address_lines), SOURCE_DIRECTORY, confirm=True
            )
            fields["postcode"] = _field(directory.postcode, SOURCE_DIRECTORY, confirm=True)
            fields["city"] = _field(directory.city, SOURCE_DIRECTORY, confirm=True)
        if donor is not None and donor.email:
            fields["email"] = _field(donor.email, SOURCE_PLEDGES, confirm=False)
        elif directory.found and directory.email:
            fields["email"] = _field(directory.email, SOURCE_DIRECTORY, confirm=True)
        phone = _field(number, SOURCE_CALLER_ID, confirm=True)
        phone["display"] = display_number(number)
        fields["phone"] = phone
    for name in ("first_name", "last_name", "postcode", "city", "email"):
        # A source that had the group but not this part leaves the field empty.
        if fields[name]["value"] is None:
            fields[name] = _empty(name)
    pledges = None
    if donor is not None:
        pledges = {
            "count": donor.pledges,
            "total_minor": donor.total_minor,
            "currency": donor.currency,
            "last_pledge_at": _iso(donor.last_pledge_at),
        }
    return {
        "caller": {"number": number, "display": display_number(number), "issue": issue},
        "fields": fields,
        "history": {
            "earlier_calls": history.earlier_calls,
            "last_call_at": _iso(history.last_call_at),
            "pledges": pledges,
        },
        "status": str(directory.status),
        "returning_donor": donor is not None,
        "cached": directory.cached,
        "note": _note(directory.status, issue, donor, history),
    }
