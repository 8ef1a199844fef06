"""Background tasks are supervised: a failure is logged with the task's name, the
task starts again after a back-off, and meanwhile ``/readyz`` says which is down
and ``/metrics`` counts the restart."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.background import BackgroundTask, FailedPasses
from tests.conftest import Hotline, wait_for


class Flaky(BackgroundTask):
    """Fails on its first run; later runs wait until told to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.release = asyncio.Event()

    async def _run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("database went away")
        await self.release.wait()


async def test_a_failed_task_restarts_and_readyz_names_it_meanwhile(hotline: Hotline) -> None:
    assert (await hotline.http.get("/readyz")).status_code == 200
    task = Flaky()
    task.first_back_off = 3600.0  # stays down until the test looks (no timing involved)
    task._launch(task._run, name="flaky-test-task")
    try:

        async def is_down() -> bool:
            return task.down

        await wait_for(is_down)
        r = await hotline.http.get("/readyz")
        assert r.status_code == 503
        assert r.json()["code"] == "background_task_down"
        assert "flaky-test-task" in r.json()["message"]
        assert "database went away" in r.json()["tasks"]["flaky-test-task"]
        metrics = (await hotline.http.get("/metrics")).text
        assert 'pledgeline_background_task_restarts_total{task="flaky-test-task"} 1.0' in metrics
    finally:
        await task.stop()
    assert (await hotline.http.get("/readyz")).status_code == 200


async def test_a_task_runs_again_after_its_back_off(hotline: Hotline) -> None:
    task = Flaky()
    task.first_back_off = 0.0
    task._launch(task._run, name="flaky-quick")
    try:

        async def second_run() -> bool:
            return task.runs == 2 and not task.down

        await wait_for(second_run)
        assert task.restarts == 1
        assert (await hotline.http.get("/readyz")).status_code == 200
    finally:
        task.release.set()
        await task.stop()


def _fail(failures: FailedPasses) -> float:
    try:
        raise ConnectionError("database went away")
    except ConnectionError:
        return failures.failed()


def test_failed_passes_log_one_traceback_then_a_summary_and_back_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="app.background")
    failures = FailedPasses("command delivery pass")
    delays = [_fail(failures) for _ in range(8)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    # One traceback for eight failures in a row (not one a pass).
    records = [r for r in caplog.records if r.name == "app.background"]
    assert [(r.getMessage(), r.exc_info is not None) for r in records] == [
        ("command delivery pass failed", True)
    ]
    monkeypatch.setattr("app.background.FAILURE_SUMMARY_SECONDS", 0.0)
    _fail(failures)
    failures.succeeded()
    failures.succeeded()  # said once
    messages = [r.getMessage() for r in caplog.records if r.name == "app.background"]
    assert messages[1:] == [
        "command delivery pass still failing (9 passes failed)",
        "command delivery pass works again after 9 failed passes",
    ]
    # A new run of failures starts with a traceback and the shortest wait again.
    assert _fail(failures) == 0.1
    assert caplog.records[-1].exc_info is not None
