"""From a description to a :class:`~harness.datasets.dataset.Dataset`: read, validate, sort, report.

Events are put in timestamp order, stably, so events with the same time keep their file
order and every run replays the same sequence. Items come from the items file when the
description has one; without one the catalogue is empty and the items are those the events
name (what evaluation and replay do with an item they have no entry for).

Examples
--------
>>> import tempfile
>>> from harness.datasets.description import DatasetDescription, Source
>>> path = Path(tempfile.mkdtemp()) / "log.csv"
>>> _ = path.write_text("user_id,item_id,timestamp\\nu1,a,1700000060\\nu2,b,1700000000\\nu3,c,soon\\n")
>>> ds = load(DatasetDescription("log", Source(path)))
>>> ds.user_ids.tolist(), ds.event_types.tolist(), ds.report.events.kept
(['u2', 'u1'], ['click', 'click'], 2)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets.catalogue import read_items
from harness.datasets.dataset import Dataset
from harness.datasets.description import DatasetDescription, check_event_types
from harness.datasets.errors import DatasetError
from harness.datasets.events import read_events
from harness.datasets.report import LoadReport
from streamrec.settings import Settings


def load(description: DatasetDescription, settings: Settings | None = None) -> Dataset:
    """The dataset ``description`` describes; raises DatasetError when no event is usable, or when
    its type map or default type names an event type ``settings`` do not declare."""
    settings = settings or Settings()
    check_event_types(description, settings.semantics)
    events, events_report = read_events(description, settings)
    items, items_report = read_items(description.items, settings) if description.items else ([], None)
    report = LoadReport(events_report, items_report)
    if not events.users:
        why = (f"all {events_report.rows:,} rows rejected: {events_report.rejections()}" if events_report.rows
               else "it has no rows")
        raise DatasetError(f"no usable event in {events_report.source}: {why}")
    order = np.argsort(np.asarray(events.times, dtype=np.float64), kind="stable")
    user_ids, item_ids = np.array(events.users)[order], np.array(events.items)[order]
    timestamps = np.asarray(events.times, dtype=np.float64)[order]
    event_types = np.array(events.types)[order]
    report.summarise(events.users, events.items, timestamps, events.types,
                     {it.item_id for it in items} if items_report is not None else None)
    return Dataset(description.name, user_ids, item_ids, timestamps,
                   np.asarray(events.values, dtype=np.float32)[order], items, event_types, report)
