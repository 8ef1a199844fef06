"""Pledges of simulated callers (demo, training, load): plausible donors and amounts."""

from __future__ import annotations

import random

from app.pledges.schemas import PledgeIn

FIRST = ("Alice", "Bruno", "Chloé", "David", "Élise", "François", "Gaëlle", "Hugo", "Inès", "Jules")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy")
PLACES = (
    ("75011", "Paris"),
    ("69003", "Lyon"),
    ("13008", "Marseille"),
    ("31000", "Toulouse"),
    ("59000", "Lille"),
    ("33000", "Bordeaux"),
    ("20000", "Ajaccio"),
    ("97400", "Saint-Denis"),
)
# Minor units; most callers give a round amount, a few give much more.
AMOUNTS = (1000, 2000, 2000, 2500, 3000, 5000, 5000, 5000, 10000, 15000, 30000)


def random_pledge(rng: random.Random, call_id: int) -> PledgeIn:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    postcode, city = rng.choice(PLACES)
    return PledgeIn(
        call_id=call_id,
        first_name=first,
        last_name=last,
        address=f"{rng.randint(1, 120)} rue de la République",
        postcode=postcode,
        city=city,
        email=f"{first.lower()}.{last.lower()}@example.org",
        amount_minor=rng.choice(AMOUNTS),
        frequency="monthly" if rng.random() < 0.15 else "one_off",
        consent_contact=rng.random() < 0.5,
        consent_tax_receipt=rng.random() < 0.6,
        # Two simulated donors in three may be named on air (the demo board shows
        # names); from the call, not the generator, so the seeded sequence is unchanged.
        consent_board=call_id % 3 != 0,
    )
