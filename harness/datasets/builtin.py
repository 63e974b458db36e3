"""The built-in datasets, each a description of files found in the data directory.

- ``ml-100k``: MovieLens 100K (GroupLens): 100,000 ratings 1-5 as ``rating`` events, 1,682
  movies with their genres as tags and the release date as text.
- ``movietweetings-100k``: MovieTweetings, snapshot 100K (Dooms et al., 2013): 100,000
  ratings 0-10 as ``rating`` events, the movies with their genres as tags. Its
  ``ratings.dat`` is ordered by user, so the timestamp sort matters here.

The data directory is looked up in this order: the ``data_dir`` argument (``--data-dir``),
``STREAMREC_DATA_DIR``, then ``../shared/data``; a dataset's files are in its own folder
there (``ml-100k/``, ``movietweetings-100k/``) or directly in it. Nothing is downloaded:
when the files are missing the error names where to get them, and :func:`verify_archive`
checks a downloaded MovieLens archive against its published checksum.

Examples
--------
>>> d = describe_builtin("ml-100k", "/data")                  # doctest: +SKIP
>>> d.source.path, d.value_col, d.items.tag_flag_cols[:2]     # doctest: +SKIP
(PosixPath('/data/ml-100k/u.data'), 'rating', ('unknown', 'Action'))
>>> sorted(BUILTINS)
['ml-100k', 'movietweetings-100k']
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.datasets.description import DatasetDescription, ItemsDescription, Source
from harness.datasets.errors import DatasetError, DatasetNotFound

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
MOVIETWEETINGS_URL = "https://github.com/sidooms/MovieTweetings (snapshots/100K)"


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


def _folder(root: Path, name: str) -> Path:
    return root / name if (root / name).is_dir() else root


def movielens_100k(root: Path) -> DatasetDescription:
    folder = _folder(root, "ml-100k")
    ratings, catalogue = folder / "u.data", folder / "u.item"
    if not ratings.exists() or not catalogue.exists():
        archive = root / "ml-100k.zip"
        hint = f" ({archive} exists: unzip it; its md5 must be {ML100K_MD5})" if archive.exists() else ""
        raise DatasetNotFound(f"MovieLens 100K not found under {folder}{hint}; download {ML100K_URL}")
    # u.data: user, item, rating, time, tab-separated; u.item: id|title|release|video release|
    # IMDb URL|19 genre flags, Latin-1, with quotes that are part of titles.
    items = ItemsDescription(
        Source(catalogue, delimiter="|", quote="",
               columns=("item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES),
               encoding="latin-1"),
        title_col="title", text_template="Released {release_date}.", tag_flag_cols=ML100K_GENRES)
    return DatasetDescription("ml-100k", Source(ratings, delimiter="\t", quote="",
                                                columns=("user_id", "item_id", "rating", "timestamp")),
                              value_col="rating", default_type="rating", items=items)


def movietweetings_100k(root: Path) -> DatasetDescription:
    folder = _folder(root, "movietweetings-100k")
    ratings, catalogue = folder / "ratings.dat", folder / "movies.dat"
    if not ratings.exists() or not catalogue.exists():
        raise DatasetNotFound(f"MovieTweetings 100K (ratings.dat, movies.dat) not found under {folder}; "
                              f"get {MOVIETWEETINGS_URL}")
    # ratings.dat: user::imdb_id::rating 0-10::unix seconds; movies.dat: imdb_id::Title (Year)::
    # Genre|Genre, UTF-8. IMDb ids keep their leading zeros: they are text, not numbers.
    items = ItemsDescription(Source(catalogue, delimiter="::", columns=("item_id", "title", "genres")),
                             title_col="title", tags_col="genres", tag_sep="|")
    return DatasetDescription("movietweetings-100k",
                              Source(ratings, delimiter="::", columns=("user_id", "item_id", "rating", "timestamp")),
                              value_col="rating", default_type="rating", items=items)


@dataclass(frozen=True)
class Builtin:
    describe: Callable[[Path], DatasetDescription]
    summary: str


BUILTINS = {
    "ml-100k": Builtin(movielens_100k, "MovieLens 100K: 100,000 ratings 1-5, 943 users, 1,682 movies"),
    "movietweetings-100k": Builtin(movietweetings_100k,
                                   "MovieTweetings 100K: 100,000 ratings 0-10, 16,554 users, 10,506 movies"),
}


def describe_builtin(name: str, data_dir: str | Path | None = None) -> DatasetDescription:
    if name not in BUILTINS:
        raise DatasetError(f"no built-in dataset {name!r}; built in: {', '.join(BUILTINS)}")
    return BUILTINS[name].describe(resolve_data_dir(data_dir))
