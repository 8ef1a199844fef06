"""Which language a reply is in: the user's setting, else ``Accept-Language``,
else the campaign's default, else French."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.i18n.catalogues import DEFAULT_LANGUAGE, LANGUAGES

if TYPE_CHECKING:  # an annotation only: the command line starts without Starlette
    from starlette.requests import HTTPConnection


def supported(tag: str | None) -> str | None:
    """The supported language a tag names (``fr-FR`` is ``fr``), or None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def parse_accept_language(header: str | None) -> list[str]:
    """The header's supported languages, best first (RFC 9110 q-values; q=0 excluded)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, rest = item.partition(";")
        quality = 1.0
        for parameter in rest.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = supported(tag)
        if language is not None and quality > 0:
            weighted.append((-quality, position, language))
    ordered: list[str] = []
    for _, _, language in sorted(weighted):
        if language not in ordered:
            ordered.append(language)
    return ordered


def negotiate(
    user_language: str | None = None,
    accept_language: str | None = None,
    campaign_language: str | None = None,
) -> str:
    """User setting > ``Accept-Language`` > campaign default > ``fr``."""
    chosen = supported(user_language)
    if chosen is not None:
        return chosen
    accepted = parse_accept_language(accept_language)
    if accepted:
        return accepted[0]
    return supported(campaign_language) or DEFAULT_LANGUAGE


def request_language(request: HTTPConnection) -> str:
    """The language of the reply: the caller's setting (put on ``request.state`` by
    app/auth/deps.py once the caller is known), else ``Accept-Language``, else the
    campaign's default, else French."""
    return negotiate(
        getattr(request.state, "user_language", None),
        request.headers.get("accept-language"),
        getattr(request.state, "campaign_language", None),
    )
