"""``--dataset`` and the flags that describe a data file, for every command that reads a dataset.

:func:`add_dataset_arguments` adds them to a command's parser; :func:`dataset_from_args`
loads what they name, prints the load report to stderr, and turns any dataset error into
one line on stderr (the command then exits with status 2). Each flag is the TOML key of
:mod:`harness.datasets.description` it sets (``--user-col`` is ``user_col``,
``--items-file`` is ``[items] path``), so flags and a TOML file describe data the same way.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_dataset_arguments(parser)
>>> args = parser.parse_args(["--dataset", "log.csv", "--user-col", "who", "--type-map", "pv=view",
...                           "--items-file", "items.csv", "--tags-col", "genres"])
>>> flag_options(args)
({'user_col': 'who', 'type_map': 'pv=view'}, {'path': 'items.csv', 'tags_col': 'genres'})
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.datasets.builtin import BUILTINS
from harness.datasets.dataset import Dataset
from harness.datasets.description import EVENT_FLAGS, ITEM_FLAGS
from harness.datasets.errors import DatasetError
from harness.datasets.resolve import load_dataset
from harness.datasets.times import FORMATS_HELP
from streamrec.settings import Settings

HELP = {
    "format": "csv, tsv, jsonl or parquet (default: from the extension)",
    "delimiter": "field delimiter, e.g. ',' or '\\t' or '::' (default: guessed)",
    "columns": "comma-separated column names of a file without a header line",
    "encoding": "text encoding (default utf-8)",
    "user_col": "user column (default user_id)",
    "item_col": "item column (default item_id)",
    "time_col": "time column (default timestamp)",
    "time_format": FORMATS_HELP.replace("%", "%%") + " (default seconds)",   # argparse expands %
    "type_col": "event type column (default: event_type if present)",
    "type_map": "file's types to event types, e.g. pv=view,buy=purchase",
    "default_type": "event type without a type column (default: rating with a value column, else click)",
    "value_col": "value column, e.g. a rating (default: value if present)",
}
ITEM_HELP = {
    "path": "items file: one row per item (id, title, text, tags)",
    "delimiter": "items file delimiter (default: guessed)",
    "id_col": "item id column of the items file (default item_id)",
    "title_col": "title column (default: title if present)",
    "text_col": "text column (default: text if present)",
    "tags_col": "tags column (default: tags if present)",
    "tag_sep": "separator between tags in the tags column (default |)",
}


def add_dataset_arguments(parser: argparse.ArgumentParser, default: str = "ml-100k") -> None:
    parser.add_argument("--dataset", default=default,
                        help=f"a built-in dataset ({', '.join(BUILTINS)}), a data file (CSV, TSV, JSON lines, "
                             "Parquet) or a .toml description of one (default %(default)s; docs/datasets.md)")
    group = parser.add_argument_group("describing a data file given to --dataset (docs/datasets.md)")
    for key, flag in EVENT_FLAGS.items():
        if key != "path":
            group.add_argument(flag, dest=f"dataset_{key}", metavar=key.split("_")[-1].upper(), help=HELP[key])
    for key, flag in ITEM_FLAGS.items():
        group.add_argument(flag, dest=f"dataset_items_{key}", metavar="PATH" if key == "path" else
                           key.split("_")[-1].upper(), help=ITEM_HELP[key])


def flag_options(args: argparse.Namespace) -> tuple[dict, dict]:
    """The (events, items) keys the flags set, leaving out the ones not given."""
    events = {k: getattr(args, f"dataset_{k}", None) for k in EVENT_FLAGS if k != "path"}
    items = {k: getattr(args, f"dataset_items_{k}", None) for k in ITEM_FLAGS}
    return ({k: v for k, v in events.items() if v is not None}, {k: v for k, v in items.items() if v is not None})


def dataset_from_args(args: argparse.Namespace, prog: str, settings: Settings | None = None,
                      data_dir: str | Path | None = None) -> Dataset | None:
    """The dataset the flags name, its report printed to stderr; None, said in one line, if it fails."""
    events, items = flag_options(args)
    try:
        dataset = load_dataset(args.dataset, data_dir, settings, items=items, **events)
    except (DatasetError, OSError) as exc:     # DatasetNotFound, or a file that cannot be read
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None
    for line in dataset.report.lines():
        print(line, file=sys.stderr)
    return dataset
