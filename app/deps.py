"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from app.db import Database
from app.settings import Settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
