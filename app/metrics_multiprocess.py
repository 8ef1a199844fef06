"""Prometheus multiprocess mode: each worker's figures in files, added up at a scrape.

With several workers (``pledgeline serve --workers N``) a scrape reaches one of
them. Each worker writes the figures it keeps itself (the caller look-up's
counters, app/cti) into its own files under ``PROMETHEUS_MULTIPROC_DIR``, in
prometheus_client's multiprocess format, and prometheus_client's
``MultiProcessCollector`` adds them up at a scrape, whichever worker answers.

The caller look-up keeps its counters in memory (tests and benchmarks read them
there); a worker copies them into its files as absolute values, every
:data:`PUBLISH_SECONDS`, at each scrape it answers, and when it stops
(:class:`FileWriter`). The database gauges are read at the scrape and are the
same from every worker: they never go through the files.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often a worker copies its figures into its files: well under a scrape interval.
PUBLISH_SECONDS = 1.0
# A gauge of a worker (the directory breaker: 1 while open) is, over the workers,
# the largest value among the live ones: "is any worker's breaker open?".
GAUGE_MODE = "livemax"


def multiprocess_dir() -> str | None:
    """The directory of the workers' files, or None: one process, no files."""
    return os.environ.get(ENV) or None


def prepare_multiprocess_dir() -> Path | None:
    """Set up the files' directory before the workers start (they inherit the variable).

    Without ``PROMETHEUS_MULTIPROC_DIR``, a new temporary directory (returned, for the
    caller to remove). With it, the files of an earlier run are removed: its workers
    are gone, and their gauges would otherwise count as if they were still alive.
    """
    given = multiprocess_dir()
    if given is not None:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    created = Path(tempfile.mkdtemp(prefix="pledgeline-prometheus-"))
    os.environ[ENV] = str(created)
    return created


class FileWriter:
    """Writes metric families of this process into its multiprocess files.

    The files take what prometheus_client's own Counter, Gauge and Histogram write
    (its value class, ``values.MultiProcessValue``): a counter's ``_total``, a
    gauge (with :data:`GAUGE_MODE`), a histogram's bucket counts (not cumulative)
    and ``_sum``. One value object per series, reused.
    """

    def __init__(self) -> None:
        self._value_class: Any = values.MultiProcessValue()
        self._values: dict[tuple[str, str, tuple[tuple[str, str], ...]], Any] = {}

    def write(self, families: Iterable[Metric]) -> None:
        for family in families:
            for sample in _file_samples(family):
                labels = tuple(sorted(sample.labels.items()))
                key = (family.name, sample.name, labels)
                value = self._values.get(key)
                if value is None:
                    value = self._value_class(
                        family.type,
                        family.name,
                        sample.name,
                        tuple(k for k, _ in labels),
                        tuple(v for _, v in labels),
                        family.documentation,
                        multiprocess_mode=GAUGE_MODE,
                    )
                    self._values[key] = value
                value.set(sample.value)


def _file_samples(family: Metric) -> Iterator[Sample]:
    """The samples of a family as the files hold them."""
    if family.type != "histogram":
        yield from (s for s in family.samples if not s.name.endswith("_created"))
        return
    # Buckets are stored one by one (the collector accumulates them again); the
    # count is the +Inf bucket, so it is not stored.
    buckets: dict[tuple[tuple[str, str], ...], list[Sample]] = defaultdict(list)
    for sample in family.samples:
        if sample.name.endswith("_bucket"):
            others = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            buckets[others].append(sample)
        elif sample.name.endswith("_sum"):
            yield sample
    for series in buckets.values():
        below = 0.0
        for sample in sorted(series, key=lambda s: float(s.labels["le"])):
            yield sample._replace(value=sample.value - below)
            below = sample.value
