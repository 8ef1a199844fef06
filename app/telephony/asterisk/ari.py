"""A small client for Asterisk's REST Interface: the calls the adapter makes.

Every operation is safe to repeat: the ids of channels, bridges and playbacks are
chosen by Pledgeline, so a retried originate finds its channel there already, and
a retried hang-up finds it gone (404, taken as done). Transport errors and 5xx
answers are retried a few times with back-off; anything else is the caller's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

ATTEMPTS = 4


class AriError(Exception):
    """Asterisk refused an operation or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AriClient:
    def __init__(self, base_url: str, user: str, password: str, app: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = (user, password)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/ari", auth=self._auth, timeout=10.0
        )

    @property
    def events_url(self) -> str:
        """The events websocket of the Stasis application (credentials as api_key)."""
        ws = "ws" + self.base_url.removeprefix("http")
        key = quote(f"{self._auth[0]}:{self._auth[1]}", safe="")
        return f"{ws}/ari/events?app={quote(self.app)}&api_key={key}&subscribeAll=false"

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        gone_ok: bool = False,
    ) -> Any:
        """One ARI call; ``gone_ok``: a 404 (the channel or bridge is gone) is done."""
        delay = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._http.request(method, path, params=params, json=json)
            except httpx.HTTPError as exc:
                if attempt == ATTEMPTS:
                    raise AriError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code < 300:
                    return response.json() if response.content else None
                if gone_ok and response.status_code in (404, 422):
                    return None
                if response.status_code < 500 or attempt == ATTEMPTS:
                    raise AriError(
                        f"{method} {path}: {response.status_code} {response.text[:200]}",
                        response.status_code,
                    )
            log.warning(
                "ARI %s %s failed (attempt %s), again in %.1fs", method, path, attempt, delay
            )
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    # --- channels -------------------------------------------------------------

    async def channels(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/channels"))

    async def answer(self, channel: str) -> None:
        await self.request("POST", f"/channels/{channel}/answer", gone_ok=True)

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        await self.request(
            "DELETE", f"/channels/{channel}", params={"reason": reason}, gone_ok=True
        )

    async def play(self, channel: str, media: list[str], playback_id: str) -> None:
        params = {"media": ",".join(media)}
        await self.request(
            "POST", f"/channels/{channel}/play/{playback_id}", params=params, gone_ok=True
        )

    async def start_moh(self, channel: str, moh_class: str) -> None:
        await self.request(
            "POST", f"/channels/{channel}/moh", params={"mohClass": moh_class}, gone_ok=True
        )

    async def stop_moh(self, channel: str) -> None:
        await self.request("DELETE", f"/channels/{channel}/moh", gone_ok=True)

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}", gone_ok=True)

    async def originate(
        self,
        channel_id: str,
        endpoint: str,
        app_args: str,
        *,
        timeout: int,
        caller_id: str | None = None,
        variables: dict[str, str] | None = None,
    ) -> None:
        """Ring ``endpoint``; on answer the channel enters the Stasis app with ``app_args``.
        A retry finds the channel id taken (409 or 400): the first attempt rang."""
        params: dict[str, Any] = {
            "endpoint": endpoint,
            "app": self.app,
            "appArgs": app_args,
            "timeout": timeout,
        }
        if caller_id:
            params["callerId"] = caller_id
        try:
            await self.request(
                "POST",
                f"/channels/{channel_id}",
                params=params,
                json={"variables": variables or {}},
            )
        except AriError as exc:
            if exc.status != 409:
                raise

    async def continue_in_dialplan(self, channel: str, context: str, extension: str) -> None:
        params = {"context": context, "extension": extension, "priority": 1}
        await self.request("POST", f"/channels/{channel}/continue", params=params, gone_ok=True)

    # --- bridges ----------------------------------------------------------------

    async def bridge(self, bridge_id: str) -> None:
        """A mixing bridge of this id, made unless it is there already (a caller held
        out of their bridge and bridged again, to a specialist: the same bridge)."""
        try:
            await self.request("POST", f"/bridges/{bridge_id}", params={"type": "mixing"})
        except AriError as exc:
            if exc.status != 409:  # 409: a bridge with this id exists
                raise

    async def add_to_bridge(self, bridge_id: str, channels: list[str]) -> None:
        params = {"channel": ",".join(channels)}
        await self.request("POST", f"/bridges/{bridge_id}/addChannel", params=params)

    async def remove_from_bridge(self, bridge_id: str, channel: str) -> None:
        params = {"channel": channel}
        await self.request(
            "POST", f"/bridges/{bridge_id}/removeChannel", params=params, gone_ok=True
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}", gone_ok=True)

    async def bridges(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/bridges"))

    # --- dynamic configuration (browser softphones) -------------------------------

    async def put_config(self, object_type: str, object_id: str, fields: dict[str, str]) -> None:
        body = {"fields": [{"attribute": k, "value": v} for k, v in fields.items()]}
        await self.request(
            "PUT", f"/asterisk/config/dynamic/res_pjsip/{object_type}/{object_id}", json=body
        )

    async def delete_config(self, object_type: str, object_id: str) -> None:
        await self.request(
            "DELETE",
            f"/asterisk/config/dynamic/res_pjsip/{object_type}/{object_id}",
            gone_ok=True,
        )
