"""Datasets: event streams plus item catalogues, read from files a description explains.

A *description* (:mod:`~harness.datasets.description`) says which file holds the events and
which of its columns are the user, the item, the time, the event type and the value, and
optionally which file describes the items. It comes from a TOML file, from command-line
flags (:mod:`~harness.datasets.flags`) or from code: the built-in datasets ``ml-100k`` and
``movietweetings-100k`` (:mod:`~harness.datasets.builtin`) are descriptions too.
:func:`load_dataset` turns a built-in name, a data file or a ``.toml`` path into a
:class:`Dataset`, whose ``report`` counts every row read and every row rejected, by reason,
with examples. docs/datasets.md is the user's reference.

Modules: ``dataset`` (the in-memory dataset), ``description`` (the description and its
TOML form), ``readers`` (CSV/TSV/JSON lines/Parquet into named columns), ``times`` (time
formats), ``events`` and ``catalogue`` (rows into events and items), ``report`` (the load
report), ``loader`` (description to dataset), ``builtin``, ``resolve`` (what ``--dataset``
names) and ``flags`` (the command-line options).

Examples
--------
>>> ds = load_dataset("ml-100k")                        # doctest: +SKIP
>>> len(ds.events), len(ds.items)                       # doctest: +SKIP
(100000, 1682)
"""
from __future__ import annotations

from pathlib import Path

from harness.datasets.builtin import (BUILTINS, ML100K_GENRES, ML100K_MD5, ML100K_URL, describe_builtin,
                                      resolve_data_dir, verify_archive)
from harness.datasets.dataset import Dataset
from harness.datasets.description import DatasetDescription, ItemsDescription, Source, from_toml
from harness.datasets.errors import DatasetError, DatasetNotFound
from harness.datasets.loader import load
from harness.datasets.report import LoadReport
from harness.datasets.resolve import describe, load_dataset

__all__ = ["BUILTINS", "ML100K_GENRES", "ML100K_MD5", "ML100K_URL", "Dataset", "DatasetDescription",
           "DatasetError", "DatasetNotFound", "ItemsDescription", "LoadReport", "Source", "describe",
           "describe_builtin", "from_toml", "load", "load_dataset", "load_movielens_100k", "resolve_data_dir",
           "verify_archive"]


def load_movielens_100k(data_dir: str | Path | None = None) -> Dataset:
    """MovieLens 100K (the ``ml-100k`` built-in), looked up from ``data_dir`` as in :mod:`.builtin`."""
    return load_dataset("ml-100k", data_dir)
