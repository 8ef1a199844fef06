"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.background import running_tasks
from app.db import Database
from app.deps import get_db

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and every background task runs")
async def readyz(db: Annotated[Database, Depends(get_db)]) -> JSONResponse:
    down = [task for task in running_tasks() if task.down]
    if down:
        names = ", ".join(task.name for task in down)
        return JSONResponse(
            {
                "code": "background_task_down",
                "message": f"restarting after a failure: {names}",
                "field": None,
                "tasks": {task.name: task.last_error for task in down},
            },
            503,
        )
    try:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready
        return JSONResponse(
            {"code": "database_unreachable", "message": type(exc).__name__, "field": None}, 503
        )
    return JSONResponse({"status": "ready", "database": db.dialect})
