"""Premium-rate and other special numbers, where a call costs the caller's line dearly.

A transfer out is a call the hotline pays for (or that charges the donor), so these
are the classic target of toll fraud: a number that earns its holder money per
minute. ``special_kind`` says whether an E.164 number is one of them. Where the
lists come from:

- libphonenumber's metadata (the ``phonenumbers`` package), which classifies
  numbers of every country from its national numbering plan: types
  ``PREMIUM_RATE``, ``SHARED_COST`` and ``PERSONAL_NUMBER`` (the UK's 070, often
  abused) are special.
- ``SPECIAL_PREFIXES`` below, written out so that they hold whatever version of the
  metadata is installed:
  France, ARCEP's numbering plan (décision n° 2012-0856, in force since
  1 October 2015): 081, 082 and 089 are "services à valeur ajoutée" with a
  surcharge (089: the dearest); 080 is free or ordinary rate and is not listed.
  ITU-T E.164 shared country codes (ITU Operational Bulletin, list of E.164
  assigned country codes): +979 International Premium Rate Service, +808
  International Shared Cost Service, +870 Inmarsat, +881 Global Mobile Satellite
  System, +882 and +883 International Networks (satellite and carrier ranges
  billed far above ordinary calls, and frequent destinations of international
  revenue-share fraud).
  UK, Ofcom's National Telephone Numbering Plan: 09 premium rate, 070 personal
  numbering, 084 and 087 service-charge numbers.
  Germany, Bundesnetzagentur's numbering plan: 0900 premium services, 0137 mass
  traffic (televoting), 0180 service numbers (shared cost).
  North America (NANP): area code 900, premium services.
- ``FRENCH_SHORT_NUMBER``: France's short numbers (ARCEP): 3BPQ (four digits
  starting with 3, value-added services), 118XYZ (directory enquiries) and 10XY
  (operators' services). They have no E.164 form, so they can never be a transfer
  target; ``short_number`` recognises them where an admin types one, to say why.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

SPECIAL_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate number",
    PhoneNumberType.SHARED_COST: "shared-cost number",
    PhoneNumberType.PERSONAL_NUMBER: "personal (premium) number",
}

SPECIAL_PREFIXES: dict[str, str] = {
    # France (ARCEP)
    "+3381": "French value-added (081) number",
    "+3382": "French value-added (082) number",
    "+3389": "French premium-rate (089) number",
    # ITU-T shared country codes
    "+979": "International Premium Rate Service",
    "+808": "International Shared Cost Service",
    "+870": "Inmarsat satellite number",
    "+881": "Global Mobile Satellite System number",
    "+882": "International Networks number",
    "+883": "International Networks number",
    # United Kingdom (Ofcom)
    "+449": "UK premium-rate (09) number",
    "+4470": "UK personal (070) number",
    "+4484": "UK service-charge (084) number",
    "+4487": "UK service-charge (087) number",
    # Germany (Bundesnetzagentur)
    "+49900": "German premium (0900) number",
    "+49137": "German mass-traffic (0137) number",
    "+49180": "German service (0180) number",
    # North America (NANP)
    "+1900": "North American premium (900) number",
}

FRENCH_SHORT_NUMBER = re.compile(r"3[0-9]{3}|118[0-9]{3}|10[0-9]{2}")


def special_kind(e164: str) -> str | None:
    """What kind of special number ``e164`` is, or None for an ordinary one."""
    for prefix, kind in SPECIAL_PREFIXES.items():
        if e164.startswith(prefix):
            return kind
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return SPECIAL_TYPES.get(phonenumbers.number_type(parsed))


def short_number(text: str) -> bool:
    """Whether ``text`` (spaces and dots allowed) is a French short number."""
    digits = re.sub(r"[\s.\-]", "", text)
    return FRENCH_SHORT_NUMBER.fullmatch(digits) is not None
