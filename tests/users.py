"""Users with a bearer token, made directly in the database, as an operator's set-up
would make them (tests and benchmarks)."""

from __future__ import annotations

from app.auth.service import Role, create_user
from app.auth.service import login as auth_login
from app.db import Database


async def user_with_token(
    db: Database,
    *,
    username: str,
    role: Role,
    secret: str,
    display_name: str | None = None,
    campaign_id: int | None = None,
    agent_id: int | None = None,
    site_id: int | None = None,
    client: str = "tests",
) -> tuple[int, str]:
    """Create the user and log it in (bearer, one hour): (user id, token)."""
    async with db.unit_of_work() as uow:
        user = await create_user(
            uow,
            username=username,
            display_name=display_name or username,
            role=role,
            secret=secret,
            campaign_id=campaign_id,
            agent_id=agent_id,
            site_id=site_id,
        )
    async with db.unit_of_work() as uow:
        result = await auth_login(
            uow,
            username=username,
            secret=secret,
            campaign_id=campaign_id,
            client=client,
            kind="bearer",
            hours=1,
            max_failures=5,
        )
    assert result is not None, f"{username} could not log in"
    return user.id, result[0]
