"""SQLite's writer (``app/sqlite_writer.py``): writes that wait together commit together,
and one that fails undoes none of the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from app.db import Database
from tests.conftest import sqlite_with

TABLE = Table("t_group", MetaData(), Column("id", Integer, primary_key=True))
INSERT = TABLE.insert().values(id=bindparam("id"))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_with(tmp_path / "group.db", TABLE.metadata) as database:
        yield database


def _insert(*ids: int) -> Any:
    def work(conn: Any) -> list[int]:
        for n in ids:
            conn.rows(INSERT, {"id": n})
        return list(ids)

    return work


async def _queued(db: Database, *works: Any) -> list[Any]:
    """The writes started while another writer holds the lock: they wait together."""
    async with db.unit_of_work() as uow:
        tasks = [asyncio.create_task(db.write_at_once(work)) for work in works]
        await asyncio.sleep(0)  # each has queued its write and waits for the lock
        await uow.session.execute(TABLE.insert(), {"id": 100})
    return await asyncio.gather(*tasks, return_exceptions=True)


async def _stored(db: Database) -> list[int]:
    async with db.read() as session:
        return list((await session.execute(select(TABLE.c.id).order_by(TABLE.c.id))).scalars())


async def test_writes_that_wait_together_commit_in_one_transaction(db: Database) -> None:
    sent: list[str] = []
    db.on_statement_sent.append(sent.append)
    answers = await _queued(db, _insert(1), _insert(2, 3), _insert(4))
    assert answers == [[1], [2, 3], [4]]
    assert [s.split()[0] for s in sent] == ["BEGIN", "INSERT", "INSERT", "INSERT", "INSERT"]
    assert await _stored(db) == [1, 2, 3, 4, 100]


async def test_one_failing_write_undoes_only_itself(db: Database) -> None:
    sent: list[str] = []
    db.on_statement_sent.append(sent.append)
    # The second inserts 6 then 5 again (taken by the first): it alone is undone.
    answers = await _queued(db, _insert(5), _insert(6, 5), _insert(7))
    assert answers[0] == [5] and answers[2] == [7]
    assert isinstance(answers[1], IntegrityError)
    assert await _stored(db) == [5, 7, 100]
    # Tried together, rolled back, then each alone in a transaction of its own.
    assert sum(s.startswith("BEGIN") for s in sent) == 1 + 3


async def test_a_write_whose_caller_left_before_it_ran_is_not_run(db: Database) -> None:
    async with db.unit_of_work() as uow:
        left = asyncio.create_task(db.write_at_once(_insert(8)))
        stays = asyncio.create_task(db.write_at_once(_insert(9)))
        await asyncio.sleep(0)
        left.cancel()
        await uow.session.execute(TABLE.insert(), {"id": 100})
    assert await stays == [9]
    with pytest.raises(asyncio.CancelledError):
        await left
    assert await _stored(db) == [9, 100]
