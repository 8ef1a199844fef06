"""Background tasks are supervised: a failure is logged with the task's name, the
task starts again after a back-off, and meanwhile ``/readyz`` says which is down
and ``/metrics`` counts the restart."""

from __future__ import annotations

import asyncio

from app.background import BackgroundTask
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
