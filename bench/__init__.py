"""Benchmarks: ``pledgeline bench NAME --json`` prints one JSON object of figures."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

# The benchmarks share the test suite's helpers (tests/procs.py: server processes and
# databases; tests/users.py). tests/ is not an installed package: the source tree's
# root goes on the path, once, for every benchmark module.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

BENCHMARKS = {
    "routing": "bench.routing",
    "fanout": "bench.fanout",
    "board": "bench.board",
    "cti": "bench.cti",
    "pledges": "bench.pledges",
    "export": "bench.export",
    "rules": "bench.rules",
    "totals": "bench.totals",
    "erlang": "bench.erlang",
    "sip": "bench.sip",
}


def parse_options(options: list[str]) -> dict[str, str]:
    parsed = {}
    for option in options:
        key, _, value = option.partition("=")
        parsed[key.strip()] = value.strip()
    return parsed


def run_benchmark(name: str, as_json: bool, options: list[str]) -> int:
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    figures: dict[str, Any] = module.run(parse_options(options))
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>32}: {value}")
    return 0
