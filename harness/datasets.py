"""Dataset loaders: MovieLens 100K as an event stream plus an item catalogue.

The data directory is looked up in this order: the ``data_dir`` argument (``--data-dir``),
``STREAMREC_DATA_DIR``, then ``../shared/data``. Nothing is downloaded: when the files are
missing the error names the official GroupLens download, and :func:`verify_archive` checks
a downloaded archive against its published checksum.

Examples
--------
>>> ds = load_movielens_100k()                          # doctest: +SKIP
>>> len(ds.events), len(ds.items)                       # doctest: +SKIP
(100000, 1682)
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamrec.contracts.events import Event
from streamrec.contracts.items import Item

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")


class DatasetNotFound(FileNotFoundError):
    pass


@dataclass
class Dataset:
    name: str
    # Columnar arrays in timestamp order (stable on ties, so the order is reproducible).
    user_ids: np.ndarray     # str
    item_ids: np.ndarray     # str
    timestamps: np.ndarray   # float64
    values: np.ndarray       # float32
    items: list[Item]

    @property
    def events(self) -> list[Event]:
        return [Event(u, i, "rating", float(t), float(v))
                for u, i, t, v in zip(self.user_ids, self.item_ids, self.timestamps, self.values)]

    def __len__(self) -> int:
        return len(self.user_ids)

    def head(self, n: int) -> "Dataset":
        return Dataset(self.name, self.user_ids[:n], self.item_ids[:n], self.timestamps[:n],
                       self.values[:n], self.items)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    for candidate in (data_dir, os.environ.get("STREAMREC_DATA_DIR") or None,
                      Path.cwd().parent / "shared" / "data", Path("../shared/data")):
        if candidate is not None and Path(candidate).is_dir():
            return Path(candidate)
    raise DatasetNotFound(
        "no data directory: pass --data-dir or set STREAMREC_DATA_DIR "
        f"(MovieLens 100K is published at {ML100K_URL}; unzip it there)")


def verify_archive(path: str | Path, md5: str = ML100K_MD5) -> None:
    digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
    if digest != md5:
        raise ValueError(f"{path}: md5 {digest} does not match the published {md5}")


def load_movielens_100k(data_dir: str | Path | None = None) -> Dataset:
    root = resolve_data_dir(data_dir)
    folder = root / "ml-100k" if (root / "ml-100k").is_dir() else root
    ratings, catalogue = folder / "u.data", folder / "u.item"
    if not ratings.exists() or not catalogue.exists():
        archive = root / "ml-100k.zip"
        hint = f" ({archive} exists: unzip it; its md5 must be {ML100K_MD5})" if archive.exists() else ""
        raise DatasetNotFound(f"MovieLens 100K not found under {folder}{hint}; download {ML100K_URL}")
    raw = np.loadtxt(ratings, dtype=np.int64)
    order = np.argsort(raw[:, 3], kind="stable")
    raw = raw[order]
    items = []
    with open(catalogue, encoding="latin-1") as fh:
        for line in fh:
            f = line.rstrip("\n").split("|")
            if len(f) < 24:
                continue
            tags = tuple(g for g, flag in zip(ML100K_GENRES, f[5:24]) if flag == "1")
            text = f"Released {f[2]}." if f[2] else ""
            items.append(Item(item_id=f[0], title=f[1], text=text, tags=tags))
    return Dataset("ml-100k", raw[:, 0].astype(str), raw[:, 1].astype(str),
                   raw[:, 3].astype(np.float64), raw[:, 2].astype(np.float32), items)


LOADERS = {"ml-100k": load_movielens_100k}


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}") from None
    return loader(data_dir)
