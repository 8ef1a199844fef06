"""The demo campaign: queues pledges, specialists and supervisors, 20 volunteers, seats;
surge thresholds on the pledges queue, and the demo volunteer on standby."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.acd import config
from app.acd.models import Agent, Campaign, Site
from app.acd.schemas import AgentIn, CampaignIn, QueueIn, SeatIn, TimeSlot
from app.auth.service import Role, create_user
from app.db import Database, UnitOfWork, utcnow
from app.roster.models import ShiftSignup
from app.roster.schemas import SiteIn
from app.roster.service import create_site
from app.roster.shift_schemas import ShiftIn
from app.roster.shifts import create_shift
from app.rules.engine import default_source
from app.rules.models import RuleFile
from app.surge.models import QueueSurge, Standby

DEMO_CAMPAIGN = "Telethon demo"
DEMO_NUMBER = "+33800123456"
SPECIALISTS_NUMBER = "+33800123457"
VOLUNTEERS = 20

# The pledges queue's surge thresholds (docs/surge.md): the simulated on-air appeals
# (PLEDGELINE_SIM_SPIKE_*: 4 x the calls for 30 s every 3 minutes) build a queue the
# 20 simulated volunteers cannot clear at once, which crosses them; the queue calms
# down between appeals and leaves surge. Its callers hear their expected wait and
# are offered a callback past 90 s (the pledges queue's settings below).
DEMO_SURGE = {
    "enter_waiting": 6,
    "leave_waiting": 1,
    "enter_wait_seconds": 90.0,
    "leave_wait_seconds": 20.0,
    "enter_service_level": 0.6,
    "leave_service_level": 0.8,
    "leave_after_seconds": 20,
}

# The logins `pledgeline demo` prints: (username, secret, role). Demo only.
# The demo's partner centres: (name, organisation, address).
DEMO_SITES = (
    ("Caen", "Lions Club", "12 rue de la Paix, 14000 Caen"),
    ("Paris", "Rotary", "5 avenue de l'Opéra, 75001 Paris"),
)
# Each site's shifts, today and tomorrow on the site's clock: (start hour, hours, seats).
DEMO_SHIFTS = ((11, 10, 6), (20, 4, 6))
DEMO_LOGINS = (
    ("agent", "123456", Role.AGENT),
    # A volunteer not trained yet: practice calls on their screen (docs/roster.md).
    ("trainee", "135790", Role.AGENT),
    ("supervisor", "supervisor-demo", Role.SUPERVISOR),
    ("organiser", "organiser-demo", Role.ORGANISER),
    ("admin", "admin-demo-pass", Role.ADMIN),
)


def demo_rules() -> str:
    """The shipped rules plus the surge snippet's (app/rules/defaults/surge.yaml): in
    a surge the demo's volunteers get the short script and every caller who has to
    wait is offered a callback. Joined as text (the rules' YAML reader is the
    loader's own: a plain YAML load would read the key ``on`` as a boolean)."""
    shipped = default_source()
    snippet = (resources.files("app.rules") / "defaults" / "surge.yaml").read_text("utf-8")
    items = snippet.split("\nrules:\n", 1)[1].split("\n  - name: ")
    extra = [item if i == 0 else "  - name: " + item for i, item in enumerate(items)]
    # A snippet rule the shipped file has already (paging standby) is not repeated.
    new = [item for item in extra if item.split("\n", 1)[0] not in shipped]
    before, scripts = shipped.split("\nscripts:\n", 1)
    return (
        before.rstrip("\n")
        + "\n\n"
        + "\n".join(i.rstrip("\n") + "\n" for i in new)
        + ("\nscripts:\n" + scripts)
    )


def demo_time_slots(now: dt.datetime) -> list[TimeSlot]:
    """Broadcast segments around the time the demo is first seeded, so its totals
    by slot have something to show: the show began an hour ago, for three hours."""
    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    segments = [("Opening", 0, 1), ("Prime-time appeal", 1, 2), ("Late show", 2, 3)]
    return [
        TimeSlot(
            name=name,
            starts_at=(start + dt.timedelta(hours=begin)).isoformat(),
            ends_at=(start + dt.timedelta(hours=end)).isoformat(),
        )
        for name, begin, end in segments
    ]


async def seed_demo_shifts(
    uow: UnitOfWork, campaign_id: int, sites: list[Site], now: dt.datetime
) -> None:
    """Shifts at each site today and tomorrow (11:00-21:00, 20:00-00:00 local), each with
    some of the site's volunteers signed up; the demo volunteer is left to sign up."""
    for site in sites:
        zone = ZoneInfo(site.timezone)
        today = now.astimezone(zone).date()
        volunteers = list(
            (
                await uow.session.execute(
                    select(Agent.id)
                    .where(Agent.site_id == site.id, Agent.login.like("volunteer%"))
                    .order_by(Agent.login)
                )
            ).scalars()
        )
        # Day shift and evening shift overlap (20:00-21:00): different volunteers.
        teams = (volunteers[:4], volunteers[4:7])
        for day in (today, today + dt.timedelta(days=1)):
            for (hour, hours, seats), team in zip(DEMO_SHIFTS, teams, strict=True):
                start = dt.datetime.combine(day, dt.time(hour), zone)
                shift = await create_shift(
                    uow,
                    ShiftIn(
                        campaign_id=campaign_id,
                        site_id=site.id,
                        starts_at=start,
                        ends_at=start + dt.timedelta(hours=hours),
                        seats=seats,
                        label="Evening" if hour >= 18 else "Day",
                    ),
                )
                for agent_id in team:
                    uow.session.add(ShiftSignup(shift_id=shift.id, agent_id=agent_id))
        await uow.session.flush()


async def seed_demo(db: Database) -> int:
    """Create the demo campaign once; returns its id."""
    async with db.unit_of_work() as uow:
        existing = (
            await uow.session.execute(select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        ).scalar_one_or_none()
        if existing is not None:
            return existing.id
        campaign = await config.create_campaign(
            uow,
            CampaignIn(
                name=DEMO_CAMPAIGN,
                dialled_numbers=[DEMO_NUMBER, SPECIALISTS_NUMBER],
                default_queue="pledges",
                time_slots=demo_time_slots(utcnow()),
            ),
        )
        supervisors = await config.create_queue(
            uow,
            QueueIn(campaign_id=campaign.id, name="supervisors", required_skill="supervision"),
        )
        await config.create_queue(
            uow,
            QueueIn(
                campaign_id=campaign.id,
                name="specialists",
                required_skill="specialist",
                dialled_numbers=[SPECIALISTS_NUMBER],
                max_wait_seconds=120,
                overflow_queue_id=supervisors.id,
                # Handed-over callers in distress: trained volunteers only.
                trained_only=True,
            ),
        )
        pledges = await config.create_queue(
            uow,
            QueueIn(
                campaign_id=campaign.id,
                name="pledges",
                required_skill="pledges",
                tiers=[(15, 2)],
                wrapup_seconds=20,
                max_wait_seconds=240,
                # In an on-air spike callers hear their expected wait, and are offered
                # a callback beyond a minute and a half (docs/surge.md#callbacks).
                wait_announce_seconds=45,
                callback_offer_seconds=90,
            ),
        )
        # Two partner centres (docs/roster.md): each lends its volunteers and seats.
        sites = {
            org: await create_site(
                uow,
                SiteIn(
                    campaign_id=campaign.id,
                    name=name,
                    organisation=org,
                    address=address,
                    seats=(VOLUNTEERS + 1) // 2,
                ),
            )
            for name, org, address in DEMO_SITES
        }
        for n in range(1, VOLUNTEERS + 1):
            partner = "Lions Club" if n % 2 else "Rotary"
            skills = {"pledges": 1 if n <= 15 else 2}
            if n in (1, 2):
                skills["specialist"] = 1
            if n == 3:
                skills["supervision"] = 1
            await config.create_agent(
                uow,
                AgentIn(
                    campaign_id=campaign.id,
                    login=f"volunteer{n:02d}",
                    display_name=f"Volunteer {n:02d}",
                    skills=skills,
                    languages=["fr"],
                    partner_org=partner,
                    site_id=sites[partner].id,
                    # Some are lent by a company (skills volunteering).
                    employer="Acme Assurances" if n % 5 == 0 else None,
                    trained=True,
                ),
            )
            await config.create_seat(
                uow,
                SeatIn(
                    campaign_id=campaign.id,
                    name=f"seat-{n:02d}",
                    address=f"sip:seat{n:02d}@pbx.local",
                    site=sites[partner].name,
                    site_id=sites[partner].id,
                ),
            )
        # A volunteer for a person to play, next to the simulated ones.
        you = await config.create_agent(
            uow,
            AgentIn(
                campaign_id=campaign.id,
                login="demo-volunteer",
                display_name="Camille (démo)",
                skills={"pledges": 1},
                languages=["fr", "en"],
                partner_org="Lions Club",
                site_id=sites["Lions Club"].id,
                trained=True,
            ),
        )
        # A volunteer still in training: practice calls until trained (not simulated).
        trainee = await config.create_agent(
            uow,
            AgentIn(
                campaign_id=campaign.id,
                login="demo-trainee",
                display_name="Léo (démo, en formation)",
                skills={"pledges": 1},
                languages=["fr"],
                partner_org="Rotary",
                site_id=sites["Rotary"].id,
                trained=False,
            ),
        )
        logins = {"agent": you.id, "trainee": trainee.id}
        await uow.session.flush()
        await seed_demo_shifts(uow, campaign.id, list(sites.values()), utcnow())
        uow.session.add(QueueSurge(queue_id=pledges.id, campaign_id=campaign.id, **DEMO_SURGE))
        # The person playing the demo volunteer is on standby: paged in a surge.
        uow.session.add(Standby(agent_id=you.id, campaign_id=campaign.id, standby=True))
        uow.session.add(
            RuleFile(campaign_id=campaign.id, version=1, source=demo_rules(), created_by="demo")
        )
        for username, secret, role in DEMO_LOGINS:
            await create_user(
                uow,
                username=username,
                display_name=username.capitalize(),
                role=role,
                secret=secret,
                campaign_id=campaign.id if role in (Role.AGENT, Role.SUPERVISOR) else None,
                agent_id=logins.get(username) if role == Role.AGENT else None,
            )
        return campaign.id
