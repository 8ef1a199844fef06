"""Which pledge a payment line pays, and how sure that is. Pure: no database.

1. **By reference** (confidence 100): a pledge reference written in the line's
   label (``K7Q-4M2``, ``K7Q4M2``, ``k7q 4m2``; the bank often drops the dash).
2. **By amount and name**, among the campaign's pledges whose outstanding amount
   (for a monthly pledge: its instalment) is the line's amount:

   | what agrees | confidence |
   |---|---|
   | amount, last name and first name | 90 |
   | amount and last name | 70 |
   | amount only | 30 |

   When several pledges score the same best, none is sure: the confidence is
   halved (at most 45). A match at :data:`AUTO_RECORD` or above with no tie is
   recorded; anything less waits for an organiser with the candidates shown.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

AUTO_RECORD = 90
BY_REFERENCE = 100
FULL_NAME, LAST_NAME, AMOUNT_ONLY = 90, 70, 30
SUGGESTIONS = 3

# The pledge reference alphabet (app/pledges/service.py): no 0/O, 1/I/L, U.
_REF_CHAR = "[A-HJKMNP-TV-Z2-9]"
_REFERENCE = re.compile(rf"(?=(?<![A-Z0-9])({_REF_CHAR}{{3}})[- ]?({_REF_CHAR}{{3}})(?![A-Z0-9]))")
# Words of a payer field that are no part of a name.
_NOT_NAMES = frozenset(
    {
        "m",
        "mr",
        "mme",
        "mlle",
        "mrs",
        "ms",
        "mm",
        "dr",
        "ou",
        "et",
        "and",
        "or",
        "de",
        "vir",
        "sepa",
    }
)


def references_in(text: str) -> list[str]:
    """Every reference-shaped token of ``text``, as ``ABC-DEF`` (most are no pledge's)."""
    upper = text.upper()
    return list(dict.fromkeys(f"{m.group(1)}-{m.group(2)}" for m in _REFERENCE.finditer(upper)))


def name_tokens(text: str) -> frozenset[str]:
    """The words of a name, without accents, case or civil titles."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return frozenset(w for w in re.split(r"[^a-z]+", plain) if len(w) > 1 and w not in _NOT_NAMES)


@dataclass
class Candidate:
    """A pledge that may be paid by a line (what matching needs of it)."""

    pledge_id: int
    reference: str
    first_name: str
    last_name: str
    amount_minor: int
    paid_minor: int
    currency: str
    frequency: str

    @property
    def outstanding(self) -> int:
        return max(self.amount_minor - self.paid_minor, 0)


@dataclass(frozen=True)
class Scored:
    pledge_id: int
    confidence: int


class Pool:
    """The open pledges of a campaign, indexed by the amount a payment of each would
    be: what a one-off pledge still owes; a monthly pledge's instalment."""

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self.by_id = {c.pledge_id: c for c in candidates}
        self._by_amount: dict[int, set[int]] = defaultdict(set)
        for c in self.by_id.values():
            self._index(c, add=True)

    def _amounts(self, c: Candidate) -> set[int]:
        if c.frequency == "monthly":
            return {c.amount_minor}
        return {c.outstanding} if c.outstanding > 0 else set()

    def _index(self, c: Candidate, *, add: bool) -> None:
        for amount in self._amounts(c):
            if add:
                self._by_amount[amount].add(c.pledge_id)
            else:
                self._by_amount[amount].discard(c.pledge_id)

    def score(self, amount: int, currency: str, payer: str, label: str) -> list[Scored]:
        """Candidates for a line, best first (ties by pledge id)."""
        words = name_tokens(f"{payer} {label}")
        scored = []
        for c in (self.by_id[i] for i in self._by_amount.get(amount, ())):
            if c.currency != currency:
                continue
            last, first = name_tokens(c.last_name), name_tokens(c.first_name)
            if last and last <= words:
                confidence = FULL_NAME if first and first <= words else LAST_NAME
            else:
                confidence = AMOUNT_ONLY
            scored.append(Scored(c.pledge_id, confidence))
        scored.sort(key=lambda s: (-s.confidence, s.pledge_id))
        if len(scored) > 1 and scored[0].confidence == scored[1].confidence:
            # Two pledges fit as well as each other: neither is sure.
            best = min(scored[0].confidence // 2, 45)
            scored = [Scored(s.pledge_id, min(s.confidence, best)) for s in scored]
        return scored[:SUGGESTIONS]

    def paid(self, pledge_id: int, amount: int) -> None:
        """A payment was recorded: the pledge owes less (later lines see it)."""
        candidate = self.by_id.get(pledge_id)
        if candidate is not None:
            self._index(candidate, add=False)
            candidate.paid_minor += amount
            self._index(candidate, add=True)
