"""The screens served by the app: login, volunteer (agent) and supervisor pages."""

from app.web.pages import router

__all__ = ["router"]
