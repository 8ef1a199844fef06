"""A small client for Asterisk's REST Interface: the calls the adapter makes.

Requests go over the events websocket while one is attached (ARI's REST over
WebSocket, Asterisk 20.13, 21.8, 22.3 and later): a request is one small JSON
message each way on a connection already open, where the same request over HTTP
costs the adapter about ten times the CPU (httpx builds and parses a whole
exchange). Without a websocket (a process that does not hold the ARI lease
provisioning a softphone, an Asterisk too old to answer on it) they go over HTTP.

Every operation is safe to repeat: the ids of channels, bridges and playbacks are
chosen by Pledgeline, so a retried originate finds its channel there already, and
a retried hang-up finds it gone (404, taken as done). Transport errors and 5xx
answers are retried a few times with back-off; anything else is the caller's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson

log = logging.getLogger(__name__)

ATTEMPTS = 4
TIMEOUT_SECONDS = 10.0
# How long the first request on a new websocket may take before the adapter
# concludes that this Asterisk does not answer requests there (it keeps HTTP).
PROBE_SECONDS = 2.0


class RequestSocket(Protocol):
    """The part of a websocket connection the client sends requests on."""

    async def send(self, message: str) -> None: ...


class _SocketClosed(Exception):
    """The websocket a request was waiting on went away: the request is retried."""


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
            base_url=self.base_url + "/ari", auth=self._auth, timeout=TIMEOUT_SECONDS
        )
        self._socket: RequestSocket | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)

    @property
    def events_url(self) -> str:
        """The events websocket of the Stasis application (credentials as api_key)."""
        ws = "ws" + self.base_url.removeprefix("http")
        key = quote(f"{self._auth[0]}:{self._auth[1]}", safe="")
        return f"{ws}/ari/events?app={quote(self.app)}&api_key={key}&subscribeAll=false"

    @property
    def on_websocket(self) -> bool:
        """Requests go over the events websocket (else over HTTP)."""
        return self._socket is not None

    async def close(self) -> None:
        self.detach()
        await self._http.aclose()

    # --- the websocket as the request channel -------------------------------------

    async def attach(self, socket: RequestSocket) -> bool:
        """Send requests on ``socket`` (the events websocket, whose reader hands every
        ``RESTResponse`` to ``take_response``) if this Asterisk answers there; else
        keep HTTP. True when requests now go over the websocket."""
        self._socket = socket
        try:
            await self._over_socket("GET", "/asterisk/ping", None, None, PROBE_SECONDS)
        except (TimeoutError, _SocketClosed) as exc:
            log.warning("ARI requests stay on HTTP: no answer on the websocket (%r)", exc)
            self.detach()
            return False
        return True

    def detach(self) -> None:
        """The websocket is gone: requests waiting on it fail (and are retried)."""
        self._socket = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(_SocketClosed())

    def take_response(self, message: dict[str, Any]) -> bool:
        """True if ``message`` answers a request of ours (it is then consumed)."""
        if message.get("type") != "RESTResponse":
            return False
        future = self._waiting.pop(str(message.get("request_id", "")), None)
        if future is not None and not future.done():
            future.set_result(message)
        return True

    async def _over_socket(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: Any,
        timeout: float = TIMEOUT_SECONDS,
    ) -> tuple[int, Any]:
        socket = self._socket
        if socket is None:
            raise _SocketClosed()
        request_id = str(next(self._request_ids))
        message: dict[str, Any] = {
            "type": "RESTRequest",
            "request_id": request_id,
            "method": method,
            "uri": path.lstrip("/"),
        }
        if params:
            message["query_strings"] = [{"name": k, "value": str(v)} for k, v in params.items()]
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = orjson.dumps(body).decode()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            try:
                await socket.send(orjson.dumps(message).decode())
            except Exception as exc:  # the send failed: the connection is going
                raise _SocketClosed() from exc
            answer = await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(request_id, None)
        content = answer.get("message_body")
        return int(answer.get("status_code", 500)), orjson.loads(content) if content else None

    async def _over_http(
        self, method: str, path: str, params: dict[str, Any] | None, body: Any
    ) -> tuple[int, Any]:
        response = await self._http.request(method, path, params=params, json=body)
        content = response.content
        if response.status_code >= 300:
            return response.status_code, response.text[:200]
        return response.status_code, orjson.loads(content) if content else None

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
                if self._socket is not None:
                    status, answer = await self._over_socket(method, path, params, json)
                else:
                    status, answer = await self._over_http(method, path, params, json)
            except (httpx.HTTPError, TimeoutError, _SocketClosed) as exc:
                if attempt == ATTEMPTS:
                    raise AriError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            else:
                if status < 300:
                    return answer
                if gone_ok and status in (404, 422):
                    return None
                if status < 500 or attempt == ATTEMPTS:
                    raise AriError(f"{method} {path}: {status} {str(answer)[:200]}", status)
            log.warning(
                "ARI %s %s failed (attempt %s), again in %.1fs", method, path, attempt, delay
            )
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def filter_events(self, allowed: frozenset[str]) -> None:
        """Asterisk sends the application only these event types (and the answers to
        its requests): a call's dial progress, variables and bridge moves never cross."""
        kinds = sorted(allowed | {"RESTResponse"})
        body = {"allowed": [{"type": kind} for kind in kinds]}
        await self.request("PUT", f"/applications/{quote(self.app)}/eventFilter", json=body)

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
