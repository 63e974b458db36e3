"""What ``--dataset`` names: a built-in dataset, a data file, or a ``.toml`` description.

Examples
--------
>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "shop log.csv"
>>> _ = path.write_text("visitor,item_id,timestamp\\nv1,a,1700000000\\n")
>>> ds = load_dataset(str(path), user_col="visitor")
>>> ds.name, len(ds), ds.event_types.tolist()
('shop-log', 1, ['click'])
>>> load_dataset("ml100k")                                     # doctest: +ELLIPSIS
Traceback (most recent call last):
harness.datasets.errors.DatasetError: unknown dataset 'ml100k': not built in (ml-100k, ...
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from harness.datasets.builtin import BUILTINS, describe_builtin
from harness.datasets.dataset import Dataset
from harness.datasets.description import DatasetDescription, from_mapping, from_toml
from harness.datasets.errors import DatasetError
from harness.datasets.loader import load
from streamrec.settings import Settings


def _name(path: Path) -> str:
    """A name fit for result file names (``evaluate-<name>.json``) from a file's name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "dataset"


def describe(spec: str, data_dir: str | Path | None = None, events: Mapping[str, Any] | None = None,
             items: Mapping[str, Any] | None = None) -> DatasetDescription:
    """The description ``spec`` names; ``events``/``items``: keys given as flags, for a data file only."""
    events = {k: v for k, v in (events or {}).items() if v is not None}
    items = {k: v for k, v in (items or {}).items() if v is not None}
    path = Path(spec).expanduser()
    if spec in BUILTINS or path.suffix.lower() == ".toml":
        if events or items:
            what = f"{spec} is built in" if spec in BUILTINS else f"{spec} describes its files itself"
            raise DatasetError(f"column and file options describe a data file given to --dataset; {what}")
        return describe_builtin(spec, data_dir) if spec in BUILTINS else from_toml(path)
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "no such file"
        raise DatasetError(f"unknown dataset {spec!r}: not built in ({', '.join(BUILTINS)}) and {why}; "
                           "--dataset also takes a path to a CSV, TSV, JSON-lines or Parquet file of events, "
                           "or to a .toml description of one (docs/datasets.md)")
    if items and "path" not in items:
        raise DatasetError("the item options (--title-col, --tags-col, ...) describe an items file: "
                           "give it with --items-file")
    doc: dict[str, Any] = {"events": {**events, "path": str(path)}}
    if items:
        doc["items"] = items
    return from_mapping(doc, base=Path.cwd(), default_name=_name(path))


def load_dataset(spec: str, data_dir: str | Path | None = None, settings: Settings | None = None, *,
                 items: Mapping[str, Any] | None = None, **events: Any) -> Dataset:
    """Load what ``spec`` names (see :func:`describe`); ``events``: event keys such as ``user_col``."""
    return load(describe(spec, data_dir, events, items), settings)
