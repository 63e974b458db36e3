"""A dataset description: which file holds the events, which columns mean what, and the items.

One description comes from a TOML file (:func:`from_toml`), from command-line flags
(:mod:`harness.datasets.flags`) or from code (:mod:`harness.datasets.builtin`); all three go
through :func:`from_mapping`, so a TOML key and its flag always mean the same thing. The
keys, TOML and flag names side by side, are in docs/datasets.md.

A TOML description has a ``name`` (default: the TOML file's name), an ``[events]`` table and
an optional ``[items]`` table; paths in it are relative to the TOML file::

    name = "shop"
    [events]
    path = "interactions.csv"
    user_col = "visitor"
    time_format = "ms"
    type_col = "action"
    type_map = { pv = "view", buy = "purchase" }
    [items]
    path = "products.csv"
    tags_col = "categories"

Examples
--------
>>> d = from_mapping({"events": {"path": "log.tsv", "user_col": "who", "type_map": "pv=view"}},
...                  base=Path("/data"), default_name="log")
>>> d.name, d.source.path, d.user_col, d.item_col, d.type_map
('log', PosixPath('/data/log.tsv'), 'who', 'item_id', {'pv': 'view'})
>>> from_mapping({"events": {"path": "x.csv", "usr_col": "u"}}, Path("."), "x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
harness.datasets.errors.DatasetError: [events] has no key 'usr_col'; known: path, format, ...
"""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from harness.datasets.errors import DatasetError, DatasetNotFound
from harness.datasets.times import check_time_format
from streamrec.contracts.semantics import EventSemantics

FORMATS = ("csv", "tsv", "jsonl", "parquet")


@dataclass(frozen=True)
class Source:
    """How to read one file into named columns."""

    path: Path
    format: str | None = None      # csv, tsv, jsonl or parquet; None: from the file's extension
    delimiter: str | None = None   # None: a tab for TSV, else guessed from the first lines
    quote: str = '"'               # "": fields are split plainly, quotes are data (.dat files)
    header: bool | None = None     # None: the first line names the columns unless `columns` does
    columns: tuple[str, ...] = ()  # the column names of a file without a header line
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ItemsDescription:
    """The item catalogue: one row per item. Title, text and tags columns are optional."""

    source: Source
    id_col: str = "item_id"
    title_col: str | None = None         # None: the column "title" if the file has one
    text_col: str | None = None          # None: the column "text" if the file has one
    text_template: str | None = None     # e.g. "Released {year}." (empty when every field is)
    tags_col: str | None = None          # None: the column "tags" if the file has one
    tag_sep: str = "|"
    tag_flag_cols: tuple[str, ...] = ()  # 0/1 columns: a 1 makes the column's name a tag


@dataclass(frozen=True)
class DatasetDescription:
    """The events file and what its columns mean, plus the optional item catalogue."""

    name: str
    source: Source
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    time_format: str = "seconds"
    type_col: str | None = None          # None: the column "event_type" if the file has one
    type_map: dict[str, str] = field(default_factory=dict)   # file's type -> contract type
    default_type: str | None = None      # without a type column; None: rating with values, else click
    value_col: str | None = None         # None: the column "value" if the file has one
    items: ItemsDescription | None = None


def _keys(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in ("name", "source", "items"))


# The flag of each key (keys without one are TOML-only); flags.py builds its options from these.
EVENT_FLAGS = {"path": "--dataset", "format": "--format", "delimiter": "--delimiter", "columns": "--columns",
               "encoding": "--encoding", "user_col": "--user-col", "item_col": "--item-col",
               "time_col": "--time-col", "time_format": "--time-format", "type_col": "--type-col",
               "type_map": "--type-map", "default_type": "--default-type", "value_col": "--value-col"}
ITEM_FLAGS = {"path": "--items-file", "delimiter": "--items-delimiter", "id_col": "--item-id-col",
              "title_col": "--title-col", "text_col": "--text-col", "tags_col": "--tags-col", "tag_sep": "--tag-sep"}


def key_label(key: str, table: str = "events") -> str:
    """How an error names a key: ``--user-col / user_col``, ``--item-id-col / [items] id_col``."""
    flag = (ITEM_FLAGS if table == "items" else EVENT_FLAGS).get(key)
    name = f"[items] {key}" if table == "items" else key
    return f"{flag} / {name}" if flag else name


SOURCE_KEYS = ("path",) + tuple(f.name for f in fields(Source) if f.name != "path")
EVENT_KEYS = SOURCE_KEYS + _keys(DatasetDescription)
ITEM_KEYS = SOURCE_KEYS + _keys(ItemsDescription)


def from_toml(path: str | Path) -> DatasetDescription:
    """The description in TOML file ``path``; raises :class:`DatasetError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFound(f"{path}: no such description file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid TOML: {exc}") from None
    try:
        return from_mapping(doc, base=path.resolve().parent, default_name=path.stem)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def from_mapping(doc: Mapping[str, Any], base: Path, default_name: str) -> DatasetDescription:
    """A description from nested dicts (a parsed TOML file, or flags gathered the same way)."""
    _only(doc, ("name", "events", "items"), "the description")
    events, items = doc.get("events"), doc.get("items")
    if not isinstance(events, Mapping) or "path" not in events:
        raise DatasetError("an [events] table with a path is required")
    _only(events, EVENT_KEYS, "[events]")
    values = {k: v for k, v in events.items() if k in _keys(DatasetDescription)}
    values["type_map"] = _type_map(values.get("type_map", {}))
    values["time_format"] = _checked(check_time_format, values.get("time_format", "seconds"))
    described_items = None
    if items is not None:
        if not isinstance(items, Mapping) or "path" not in items:
            raise DatasetError("the [items] table needs a path")
        _only(items, ITEM_KEYS, "[items]")
        item_values = {k: v for k, v in items.items() if k in _keys(ItemsDescription)}
        item_values["tag_flag_cols"] = _names(item_values.get("tag_flag_cols", ()))
        _check_template(item_values.get("text_template"))
        described_items = ItemsDescription(source=_source(items, base), **item_values)
    return DatasetDescription(name=str(doc.get("name") or default_name), source=_source(events, base),
                              items=described_items, **values)


def _only(table: Mapping, known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise DatasetError(f"{where} has no key {unknown[0]!r}; known: {', '.join(known)}")


def _checked(check, value):
    try:
        return check(value)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None


def _source(table: Mapping, base: Path) -> Source:
    fmt = table.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise DatasetError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    delimiter = table.get("delimiter")
    if delimiter in ("\\t", "tab"):       # what a shell passes for a tab
        delimiter = "\t"
    if delimiter == "":
        raise DatasetError("delimiter must not be empty")
    header = table.get("header")
    return Source(path=base / Path(str(table["path"])).expanduser(), format=fmt, delimiter=delimiter,
                  quote=str(table.get("quote", '"')), header=None if header is None else bool(header),
                  columns=_names(table.get("columns", ())), encoding=str(table.get("encoding", "utf-8")))


def _names(value) -> tuple[str, ...]:
    """Column names from a TOML list or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def _type_map(value) -> dict[str, str]:
    """``{"pv": "view"}`` from a TOML table or ``"pv=view,buy=purchase"`` (:func:`check_event_types`
    checks the targets against the declared event types)."""
    if isinstance(value, str):
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise DatasetError(f"type_map {value!r} must look like pv=view,buy=purchase")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, Mapping):
        raise DatasetError("type_map must be a table such as { pv = \"view\" } or a string pv=view,buy=purchase")
    return {str(k): str(v) for k, v in value.items()}


def check_event_types(description: DatasetDescription, semantics: EventSemantics) -> None:
    """Raise DatasetError when ``type_map`` or ``default_type`` names a type ``semantics`` does not
    declare (``STREAMREC_EVENT_WEIGHTS``): every event of it would be rejected.

    >>> from streamrec.contracts.semantics import event_semantics
    >>> d = from_mapping({"events": {"path": "x.csv", "type_map": "pv=view,thumbs_down=dislike"}}, Path("."), "x")
    >>> check_event_types(d, event_semantics("view=1,dislike=-1"))
    >>> check_event_types(d, event_semantics())     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    harness.datasets.errors.DatasetError: type_map sends 'thumbs_down' to 'dislike', which is not a declared ...
    """
    declared = f"(declared: {', '.join(semantics.types)}; STREAMREC_EVENT_WEIGHTS declares a deployment's own)"
    if description.default_type is not None and not semantics.accepts(description.default_type):
        raise DatasetError(f"default_type {description.default_type!r} is not a declared event type {declared}")
    for source_type, target in description.type_map.items():
        if not semantics.accepts(target):
            raise DatasetError(f"type_map sends {source_type!r} to {target!r}, which is not a declared event type "
                               f"{declared}")


def _check_template(template: str | None) -> None:
    if template is None:
        return
    try:
        list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DatasetError(f"text_template {template!r}: {exc}") from None


def template_fields(template: str) -> list[str]:
    """The column names a text template refers to, e.g. ``["year"]`` for ``"Released {year}."``."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]
