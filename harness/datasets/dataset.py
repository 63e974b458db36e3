"""The in-memory dataset: columnar events in timestamp order plus an item catalogue.

Examples
--------
>>> import numpy as np
>>> ds = Dataset("toy", np.array(["u1", "u2"]), np.array(["a", "b"]), np.array([1.0, 2.0]),
...              np.ones(2, dtype=np.float32), [], event_types=np.array(["view", "purchase"]))
>>> [(e.event_type, e.timestamp) for e in ds.events]
[('view', 1.0), ('purchase', 2.0)]
>>> ds.head(1).event_types.tolist()
['view']
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.datasets.report import LoadReport
from streamrec.contracts.events import Event
from streamrec.contracts.items import Item


@dataclass
class Dataset:
    name: str
    # Columnar arrays in timestamp order (stable on ties, so the order is reproducible).
    user_ids: np.ndarray     # str
    item_ids: np.ndarray     # str
    timestamps: np.ndarray   # float64
    values: np.ndarray       # float32
    items: list[Item]
    # One declared event type per event (streamrec.contracts.semantics); None means every event is
    # a rating (what datasets built in code, such as the synthetic generator's, have always been).
    event_types: np.ndarray | None = None
    # How the files were read (rows rejected and why); None for datasets built in code.
    report: LoadReport | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.event_types is None:
            self.event_types = np.full(len(self.user_ids), "rating")

    @property
    def events(self) -> list[Event]:
        return [Event(u, i, str(e), float(t), float(v)) for u, i, e, t, v
                in zip(self.user_ids, self.item_ids, self.event_types, self.timestamps, self.values)]

    def __len__(self) -> int:
        return len(self.user_ids)

    def head(self, n: int) -> "Dataset":
        return Dataset(self.name, self.user_ids[:n], self.item_ids[:n], self.timestamps[:n],
                       self.values[:n], self.items, self.event_types[:n], self.report)
