"""The built-in datasets: MovieLens 100K exactly as the original loader gave it, MovieTweetings
100K in the shape its provenance note states.

``_original_movielens_100k`` is a frozen copy of the hand-written loader that came before
dataset descriptions; every evaluation number published for ml-100k was computed from its
arrays, so the description-driven loader must give the same arrays, in the same order.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.datasets import DatasetNotFound, load_dataset, load_movielens_100k
from streamrec.contracts.items import Item
from tests.conftest import DATA_DIR

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")


def _original_movielens_100k(folder):
    """The loader as it was (harness/datasets.py before descriptions), returning its arrays."""
    raw = np.loadtxt(folder / "u.data", dtype=np.int64)
    order = np.argsort(raw[:, 3], kind="stable")
    raw = raw[order]
    items = []
    with open(folder / "u.item", encoding="latin-1") as fh:
        for line in fh:
            f = line.rstrip("\n").split("|")
            if len(f) < 24:
                continue
            tags = tuple(g for g, flag in zip(ML100K_GENRES, f[5:24]) if flag == "1")
            text = f"Released {f[2]}." if f[2] else ""
            items.append(Item(item_id=f[0], title=f[1], text=text, tags=tags))
    return (raw[:, 0].astype(str), raw[:, 1].astype(str), raw[:, 3].astype(np.float64),
            raw[:, 2].astype(np.float32), items)


@pytest.fixture(scope="module")
def ml100k_pair():
    return _original_movielens_100k(DATA_DIR / "ml-100k"), load_movielens_100k(DATA_DIR)


def test_ml100k_events_are_the_original_arrays(ml100k_pair):
    (users, items, times, values, _), ds = ml100k_pair
    assert ds.name == "ml-100k" and len(ds) == 100_000
    # Ids: the same strings in the same order (the original's width came from int64 -> str).
    assert ds.user_ids.dtype.kind == users.dtype.kind == "U"
    assert ds.user_ids.tolist() == users.tolist() and ds.item_ids.tolist() == items.tolist()
    assert ds.timestamps.dtype == times.dtype and ds.timestamps.tobytes() == times.tobytes()
    assert ds.values.dtype == values.dtype and ds.values.tobytes() == values.tobytes()


def test_ml100k_catalogue_is_the_original(ml100k_pair):
    (*_, items), ds = ml100k_pair
    assert len(ds.items) == 1682 and ds.items == items
    assert ds.items[0].tags == ("Animation", "Children's", "Comedy")


def test_movietweetings_100k_shape():
    ds = load_dataset("movietweetings-100k", DATA_DIR)
    assert ds.name == "movietweetings-100k" and not ds.report.events.rejected and not ds.report.items.rejected
    # PROVENANCE.md: 16,554 users, 10,506 movies; ratings 0-10; ratings.dat is ordered by user.
    assert (len(ds), len(set(ds.user_ids.tolist())), len(ds.items)) == (100_000, 16_554, 10_506)
    assert (ds.values.min(), ds.values.max()) == (0.0, 10.0) and set(ds.event_types.tolist()) == {"rating"}
    assert (np.diff(ds.timestamps) >= 0).all()
    raw = (DATA_DIR / "movietweetings-100k" / "ratings.dat").read_text().splitlines()
    first = min(raw, key=lambda line: int(line.split("::")[3]))      # the earliest rating, wherever it is
    assert [ds.user_ids[0], ds.item_ids[0]] == first.split("::")[:2]
    # IMDb ids are text with leading zeros, in the ratings and the catalogue alike.
    assert ds.items[0].item_id == "0002844" and ds.items[0].title.startswith("Fantômas")
    assert ds.items[0].tags == ("Crime", "Drama") and ds.report.items_without_metadata == 0


def test_builtin_files_missing_name_the_download(tmp_path):
    with pytest.raises(DatasetNotFound, match="ml-100k.zip"):
        load_dataset("ml-100k", tmp_path)
    with pytest.raises(DatasetNotFound, match="sidooms/MovieTweetings"):
        load_dataset("movietweetings-100k", tmp_path)
