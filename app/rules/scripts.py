"""Scripts on the volunteer's screen: rendering placeholders and the ``script.show`` event."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd import hours
from app.acd.models import Agent, Call, Campaign
from app.auth.models import User
from app.cti.service import stored_pop
from app.db import UnitOfWork
from app.realtime.outbox import emit
from app.rules.loader import PLACEHOLDER, Script
from app.settings import Settings

DEFAULT_SCRIPT = "pledge"


# The space an empty placeholder leaves before a comma or full stop ("Bonjour , merci").
_SPACE_BEFORE_STOP = re.compile(r"\s+([,.])")


def fill(text: str, values: dict[str, Any]) -> str:
    """Replace ``{group.name}`` placeholders; unknown or missing ones become empty (and
    leave no space before a comma or full stop: "Hello {caller.first_name}, thank you"
    reads "Hello, thank you" for a caller whose name is not known)."""

    def one(match: Any) -> str:
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return _SPACE_BEFORE_STOP.sub(r"\1", " ".join(PLACEHOLDER.sub(one, text).split()))


def placeholder_values(
    facts: dict[str, dict[str, Any]],
    campaign: Campaign,
    settings: Settings,
    *,
    agent: Agent | None = None,
    pop: dict[str, Any] | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        f"{group}.{name}": (", ".join(v) if isinstance(v, list) else v)
        for group, names in facts.items()
        for name, v in names.items()
    }
    fields = (pop or {}).get("fields") or {}
    values.update(
        {
            "caller.first_name": (fields.get("first_name") or {}).get("value") or "",
            "caller.last_name": (fields.get("last_name") or {}).get("value") or "",
            "campaign.name": campaign.name,
            "campaign.opening_hours": hours.describe(campaign.opening_hours),
            "campaign.closed_message": campaign.closed_message,
            "campaign.partner_helpline": settings.rules_partner_helpline,
            "agent.name": agent.display_name if agent is not None else "",
        }
    )
    return values


# Volunteers' own languages, per database and agent, kept a short while: asked at
# every offer, a login's language changes seldom, and the offer's statement budget
# (tests/test_call_budget.py) has no room for a read each time.
LANGUAGE_TTL_SECONDS = 30.0
_languages: dict[tuple[str, int], tuple[str | None, float]] = {}


async def volunteer_language(
    session: AsyncSession, agent_id: int | None, campaign: Campaign
) -> str:
    """The language a volunteer reads: their login's setting, else the campaign's."""
    if agent_id is None:
        return campaign.language
    from app.rules.engine import db_key

    key = (db_key(session), agent_id)
    now = time.monotonic()
    cached = _languages.get(key)
    if cached is not None and now - cached[1] < LANGUAGE_TTL_SECONDS:
        chosen = cached[0]
    else:
        chosen = await session.scalar(
            select(User.language)
            .where(User.agent_id == agent_id, User.language.is_not(None))
            .limit(1)
        )
        _languages[key] = (chosen, now)
    return chosen or campaign.language


def render(script: Script, values: dict[str, Any], call_id: int | None) -> dict[str, Any]:
    """The script as the screen draws it: steps with their placeholders filled."""
    return {
        "name": script.name,
        "version": script.version,
        "title": fill(script.title, values),
        "call_id": call_id,
        "steps": [
            {
                "kind": step.kind,
                "text": fill(step.text, values),
                "items": [fill(item, values) for item in step.items],
                "buttons": [{"id": b.id, "label": fill(b.label, values)} for b in step.buttons],
            }
            for step in script.steps
        ],
    }


def show(uow: UnitOfWork, call: Call, agent_id: int, rendered: dict[str, Any]) -> None:
    """Push a script to one volunteer's screen; it also becomes the call's script."""
    if (call.context or {}).get("script") != rendered["name"]:
        call.context = {**(call.context or {}), "script": rendered["name"]}
    emit(
        uow,
        "script.show",
        campaign_id=call.campaign_id,
        call_id=call.id,
        agent_id=agent_id,
        data={"script": rendered},
    )


async def pop_of(session: AsyncSession, call: Call | None) -> dict[str, Any] | None:
    return await stored_pop(session, call.id) if call is not None else None
