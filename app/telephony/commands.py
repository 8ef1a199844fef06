"""Commands to the telephony platform, written to an outbox in the deciding transaction.

They are pushed to the callback URL by ``app.telephony.delivery`` (or consumed by the
simulated platform) and can always be read by polling ``GET /telephony/commands``.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UnitOfWork
from app.telephony.models import Command


class CommandName(enum.StrEnum):
    ANSWER = "answer"
    PLAY = "play"
    BRIDGE = "bridge"
    TRANSFER = "transfer"
    HANGUP = "hangup"


def issue(uow: UnitOfWork, command: CommandName, provider_call_id: str, **args: Any) -> Command:
    row = Command(command=command.value, provider_call_id=provider_call_id, args=args)
    uow.session.add(row)
    return row


def as_message(row: Command) -> dict[str, Any]:
    return {
        "id": row.id,
        "command": row.command,
        "call_id": row.provider_call_id,
        "args": row.args,
        "created_at": row.created_at.isoformat(),
    }


async def read_after(session: AsyncSession, after: int, limit: int) -> list[Command]:
    stmt = select(Command).where(Command.id > after).order_by(Command.id).limit(limit)
    return list((await session.execute(stmt)).scalars())
