"""The port: what the hotline needs from a telephony platform.

Events come in through ``app.telephony.inbound.handle`` whichever the platform;
commands go out through one ``TelephonyPlatform`` implementation per platform kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from app.db import Database


def softphone_endpoint(agent_id: int) -> str:
    """The PBX endpoint of the seat ``agent:<id>`` (a volunteer without a seat row of
    their own): the one their browser softphone registers as and the platform rings."""
    return f"agent-{agent_id}"


class DeliveryFailed(Exception):
    """The platform did not take the command; delivery is retried later."""


class TelephonyPlatform(ABC):
    name: ClassVar[str]

    async def start(self, db: Database) -> None:  # noqa: B027 - optional hook
        """Open connections; called once when the app starts."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Close connections; called once when the app stops."""

    async def provision_softphone(self, endpoint: str, username: str, password: str) -> None:  # noqa: B027
        """Let a browser softphone register as seat ``endpoint`` with these short-lived
        credentials (issued per login session, never the PIN). Platforms without
        softphones ignore it."""

    async def revoke_softphone(self, endpoint: str, username: str) -> None:  # noqa: B027
        """Withdraw credentials given by :meth:`provision_softphone` (logout, expiry)."""

    def accepts_commands(self) -> bool:
        """Whether this process delivers commands now: a platform held by one process
        at a time (Asterisk's ARI connection) says no in the others, which leave
        the commands to it."""
        return True

    @abstractmethod
    async def send(self, command: dict[str, Any]) -> None:
        """Deliver one command (``answer``, ``play``, ``bridge``, ``transfer``, ``hangup``)."""
