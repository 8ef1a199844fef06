"""What other packages may read of calls, without the ACD's tables.

The CTI's look-up needs a call's number and the caller's earlier calls, and must
lock the call before it stores a pop (so an offer in progress sees it, or it sees
the offer's agent). These reads belong to the ACD; ``CallerLookup`` is given this
object (``app/main.py``) instead of reading the ``calls`` table itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.acd.models import Call

# Built once, bound per call: one screen pop per call reads it.
_LOCK_FOR_POP = (
    select(Call.campaign_id, Call.queue_id, Call.agent_id, Call.state)
    .where(Call.id == bindparam("p_call"))
    .with_for_update()
)


class CallRecords:
    async def caller_calls(
        self, session: AsyncSession, call_id: int
    ) -> tuple[int, str | None, str | None, int, Any] | None:
        """The call's campaign, number and its issue, and the earlier calls from its
        number, in one statement: (campaign, number, issue, how many, the last one).

        Earlier calls: from the same number to the same campaign, received before
        this one, its own legs (same provider call id: transfers) left out, counted
        once per provider call id.
        """
        earlier = aliased(Call)
        same_caller = (
            earlier.caller_number == Call.caller_number,
            earlier.campaign_id == Call.campaign_id,
            earlier.received_at < Call.received_at,
            earlier.provider_call_id != Call.provider_call_id,
        )
        count = (
            select(func.count(func.distinct(earlier.provider_call_id)))
            .where(*same_caller)
            .scalar_subquery()
        )
        last = select(func.max(earlier.received_at)).where(*same_caller).scalar_subquery()
        stmt = select(
            Call.campaign_id, Call.caller_number, Call.caller_number_issue, count, last
        ).where(Call.id == call_id)
        row = (await session.execute(stmt)).one_or_none()
        if row is None:
            return None
        campaign_id, number, issue, n, last_at = row
        return int(campaign_id), number, issue, int(n or 0), last_at

    async def lock_for_pop(
        self, session: AsyncSession, call_id: int
    ) -> tuple[int, int | None, int | None, str] | None:
        """Lock the call (the global lock order starts with it): its campaign, queue,
        agent and state."""
        row = (await session.execute(_LOCK_FOR_POP, {"p_call": call_id})).one_or_none()
        if row is None:
            return None
        campaign_id, queue_id, agent_id, state = row
        return int(campaign_id), queue_id, agent_id, str(state)


CALL_RECORDS = CallRecords()
