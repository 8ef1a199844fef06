"""Commands pushed to the platform's callback URL, signed like the webhook."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from app import signing
from app.telephony.port import DeliveryFailed, TelephonyPlatform


class HttpCallbackPlatform(TelephonyPlatform):
    name: ClassVar[str] = "http_callback"

    def __init__(self, url: str, secret: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self.secret = secret
        self._client = httpx.AsyncClient(timeout=timeout_seconds)

    async def stop(self) -> None:
        await self._client.aclose()

    async def send(self, command: dict[str, Any]) -> None:
        body = json.dumps(command, separators=(",", ":")).encode()
        # Signed at each attempt: a retry carries a fresh timestamp, not the first one.
        headers = {"Content-Type": "application/json", **signing.signed_headers(self.secret, body)}
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise DeliveryFailed(f"callback answered {response.status_code}")
