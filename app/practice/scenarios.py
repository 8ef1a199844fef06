"""The scripted practice callers: who calls, what they say, what a good call ends with.

Scenarios are data: adding one is adding a :class:`Scenario` to ``SCENARIOS``.
Each caller arrives on the real volunteer screen with a screen pop built by the
real pop assembler (``app.cti.screenpop.assemble``), so the caller panel shows
it exactly as it shows a real caller's. The numbers are valid mobile numbers (the pledge
form checks them as a real one) of no one known; e-mail addresses are
``example.org``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.cti.directory import DirectoryResult, Status
from app.cti.screenpop import CallHistory, ReturningDonor, assemble
from app.i18n import N_

PLEDGE = "pledge"
PRANK = "prank"
HANDOVER = "handover"


@dataclass(frozen=True)
class Expected:
    """What a good practice call ends with.

    ``outcome``: ``pledge`` (a pledge of ``amount_minor``, ``frequency``, with the
    donor's ``last_name``, its reference read back), ``prank`` (closed with the
    prank script) or ``handover`` (the Needs-support hand-over, no pledge).
    ``card``: the caller offers a card number, which the volunteer must refuse.
    """

    outcome: str
    amount_minor: int = 0
    frequency: str = "one_off"
    last_name: str = ""
    postcode: str = ""
    card: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    summary: str
    number: str
    # What the caller says, step by step (the volunteer reads it as the caller's lines).
    lines: tuple[str, ...]
    expected: Expected
    directory: DirectoryResult
    donor: ReturningDonor | None = None
    earlier_calls: int = 0

    def pop(self) -> dict[str, Any]:
        """The screen pop, as the caller panel gets it for a real call."""
        return assemble(
            number=self.number,
            issue=None,
            directory=self.directory,
            history=CallHistory(earlier_calls=self.earlier_calls),
            donor=self.donor,
        )

    def out(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "outcome": self.expected.outcome,
        }


_LAST_YEAR = dt.datetime(2025, 12, 6, 20, 15, tzinfo=dt.UTC)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="returning_donor",
            title=N_("A returning donor"),
            summary=N_("Monique gave last year and pledges again; her details are on screen."),
            number="+33612345601",
            lines=(
                N_("Hello! It's Monique Lefèvre, I gave last year during the telethon."),
                N_("I would like to give 50 euros this time, just once."),
                N_("Same address as last year, yes. And the link by e-mail, please."),
                N_("Could you give me the reference, so that I can note it down?"),
            ),
            expected=Expected(outcome=PLEDGE, amount_minor=5000, last_name="Lefèvre"),
            directory=DirectoryResult(status=Status.NOT_FOUND, number="+33612345601"),
            donor=ReturningDonor(
                first_name="Monique",
                last_name="Lefèvre",
                address_lines=("8 rue Écuyère",),
                postcode="14000",
                city="Caen",
                email="monique.lefevre@example.org",
                phone="+33612345601",
                pledges=1,
                total_minor=3000,
                currency="EUR",
                last_pledge_at=_LAST_YEAR,
            ),
            earlier_calls=1,
        ),
        Scenario(
            name="long_name",
            title=N_("A first-time donor with a long name"),
            summary=N_("A first pledge, monthly; the caller spells a long name letter by letter."),
            number="+33612345602",
            lines=(
                N_("Good evening, I've never done this before: I'd like to give 20 euros a month."),
                N_("My name is Anne-Sophie Vanderhaeghen-Oudenaarde."),
                N_(
                    "I'll spell it: V, A, N, D, E, R, H, A, E, G, H, E, N, hyphen, "
                    "O, U, D, E, N, A, A, R, D, E."
                ),
                N_("12 rue des Tanneurs, 14000 Caen. My e-mail is as.vdh@example.org."),
                N_("What is my reference, please?"),
            ),
            expected=Expected(
                outcome=PLEDGE,
                amount_minor=2000,
                frequency="monthly",
                last_name="Vanderhaeghen-Oudenaarde",
                postcode="14000",
            ),
            directory=DirectoryResult(status=Status.NOT_FOUND, number="+33612345602"),
        ),
        Scenario(
            name="prank",
            title=N_("A prank call"),
            summary=N_("A caller who is not calling to pledge: close the call with the script."),
            number="+33612345603",
            lines=(
                N_("Hello? Is this the pizzeria? I'd like forty kilos of pizza. [laughter]"),
                N_("No, no, I want to pledge... one million euros! From Mister Mickey Mouse."),
                N_("[more laughter in the background]"),
            ),
            expected=Expected(outcome=PRANK),
            directory=DirectoryResult(status=Status.NOT_FOUND, number="+33612345603"),
            earlier_calls=4,
        ),
        Scenario(
            name="distress",
            title=N_("A caller in distress"),
            summary=N_("A caller who needs help rather than a pledge form: hand them over."),
            number="+33612345604",
            lines=(
                N_("Sorry... I'm not really calling about a donation."),
                N_("Things have been very hard lately and I don't know who to talk to."),
                N_("Is there someone there who could listen to me?"),
            ),
            expected=Expected(outcome=HANDOVER),
            directory=DirectoryResult(status=Status.NOT_FOUND, number="+33612345604"),
        ),
        Scenario(
            name="card",
            title=N_("A caller who wants to pay by card"),
            summary=N_("A pledge whose caller wants to read out a card number: refuse it kindly."),
            number="+33612345605",
            lines=(
                N_("Hello, I'd like to give 30 euros, once."),
                N_("Jean Martin, 3 place Saint-Sauveur, 14000 Caen; jean.martin@example.org."),
                N_("I have my card here, shall I read you the number? It's a Visa..."),
                N_("Oh, a link by e-mail? All right then. What's the reference?"),
            ),
            expected=Expected(outcome=PLEDGE, amount_minor=3000, last_name="Martin", card=True),
            directory=DirectoryResult(
                status=Status.FOUND,
                number="+33612345605",
                first_name="Jean",
                last_name="Martin",
                address_lines=("3 place Saint-Sauveur",),
                postcode="14000",
                city="Caen",
            ),
        ),
    )
}
