"""``POST /softphone/credentials``: the volunteer page's softphone registration."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.deps import current_principal
from app.auth.service import Principal
from app.db import Database
from app.deps import get_db
from app.softphone.schemas import IceServerOut, SoftphoneCredentialsOut
from app.softphone.service import Softphones

router = APIRouter(tags=["softphone"])
DB = Annotated[Database, Depends(get_db)]


@router.post(
    "/softphone/credentials",
    response_model=SoftphoneCredentialsOut,
    summary="Credentials for the volunteer's browser softphone",
)
async def softphone_credentials(
    request: Request,
    response: Response,
    db: DB,
    principal: Annotated[Principal, Depends(current_principal)],
) -> SoftphoneCredentialsOut:
    """For the signed-in volunteer's own session: where to register, as which seat,
    with a user name of this session and a new password, until ``expires_at`` (the
    page asks again before). 404 ``softphone_off`` when the hotline offers no
    softphone (``PLEDGELINE_SOFTPHONE_WS_URL`` empty), 409 ``at_desk_phone`` for a
    volunteer signed in at a seat with a desk phone."""
    softphones: Softphones = request.app.state.softphones
    issued = await softphones.issue(db, principal)
    response.headers["Cache-Control"] = "no-store"  # a password: kept by no cache
    return SoftphoneCredentialsOut(
        ws_url=issued.ws_url,
        sip_uri=issued.sip_uri,
        endpoint=issued.endpoint,
        username=issued.username,
        password=issued.password,
        expires_at=issued.expires_at,
        ice_servers=[IceServerOut(**s) for s in issued.ice_servers],
    )
