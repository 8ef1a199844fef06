"""Summary figures shared by the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def percentiles(
    values: array[float] | list[float], qs: tuple[float, ...] = (50, 90, 99), digits: int = 2
) -> dict[str, Any]:
    """Nearest-rank percentiles, max and count (``{"n": 0}`` for no values)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out: dict[str, Any] = {}
    for q in qs:
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        out[f"p{q:g}"] = round(ordered[index], digits)
    out["max"] = round(ordered[-1], digits)
    out["n"] = len(ordered)
    return out


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by these processes (gone ones count 0)."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


async def profile_servers(directory: Path, name: str, seconds: float, pids: list[int]) -> None:
    """``py-spy record`` each server for ``seconds`` (raw collapsed stacks, one file per
    server: ``{name}-server{i}.txt``), sampling without pausing them."""
    venv_spy = Path(sys.executable).parent / "py-spy"
    spy = str(venv_spy) if venv_spy.exists() else "py-spy"
    spies = [
        await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "-o",
            str(directory / f"{name}-server{i}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for i, pid in enumerate(pids)
    ]
    for proc in spies:
        await proc.wait()
