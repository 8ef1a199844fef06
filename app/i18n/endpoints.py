"""``GET /i18n/{language}``: the pages' catalogue and formats (public, cacheable)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from app.errors import NotFound
from app.i18n.catalogues import LANGUAGES, page_catalogue
from app.i18n.formats import page_formats

router = APIRouter(tags=["i18n"])

# The same for everybody and changed only by a release: caches may keep it an hour.
CACHE_CONTROL = "public, max-age=3600"


class CatalogueOut(BaseModel):
    language: str = Field(description="`fr` or `en`")
    messages: dict[str, str] = Field(description="message id (English text) to its translation")
    formats: dict[str, Any] = Field(
        description="separators, currency, percent, date and time patterns (CLDR, via Babel)"
    )


@router.get("/i18n/{language}", response_model=CatalogueOut, summary="A language's catalogue")
async def catalogue(
    language: Annotated[str, Path(max_length=8, description="`fr` or `en`")], response: Response
) -> CatalogueOut:
    """What the pages' script (``/static/i18n.js``) needs: the translated messages and
    the number and date formats. No personal data; no login."""
    if language not in LANGUAGES:
        raise NotFound("no language {language!r}", field="language", language=language)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return CatalogueOut(
        language=language, messages=page_catalogue(language), formats=page_formats(language)
    )
