"""What ``POST /softphone/credentials`` answers."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class IceServerOut(BaseModel):
    urls: str = Field(description="A STUN or TURN URL (``stun:host:3478``).")


class SoftphoneCredentialsOut(BaseModel):
    ws_url: str = Field(description="The PBX's websocket the softphone registers on.")
    sip_uri: str = Field(description="The address the softphone registers (``sip:agent-7@pbx``).")
    endpoint: str = Field(description="The PBX endpoint: the volunteer's seat (``agent-<id>``).")
    username: str = Field(description="Digest user name: random per login session.")
    password: str = Field(description="Digest password: new at every request, never stored.")
    expires_at: dt.datetime = Field(
        description="When the credentials end: ask again before (the page does)."
    )
    ice_servers: list[IceServerOut] = Field(description="STUN/TURN servers for WebRTC.")
