"""Reading the items file of a description into the item catalogue.

Each row is one :class:`~streamrec.contracts.items.Item`: its id, a title, a text (a column,
or a template over columns such as ``"Released {release_date}."``, empty when every column
it names is empty) and tags (a column split on ``tag_sep``, a JSON list, and/or 0/1 flag
columns whose names become tags, as MovieLens stores genres). A row without an id, with an
id the item contract refuses, or repeating an id already read is rejected and counted; the
first row of an id wins.

Examples
--------
>>> import tempfile
>>> from harness.datasets.description import ItemsDescription, Source
>>> path = Path(tempfile.mkdtemp()) / "items.csv"
>>> _ = path.write_text("item_id,title,tags\\na,Heat,Crime|Drama\\nb,Up,\\na,Heat again,\\n")
>>> items, report = read_items(ItemsDescription(Source(path)))
>>> [(it.item_id, it.title, it.tags) for it in items], dict(report.rejected)
([('a', 'Heat', ('Crime', 'Drama')), ('b', 'Up', ())], {'duplicate_id': 1})
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.datasets.description import ItemsDescription, key_label, template_fields
from harness.datasets.events import column
from harness.datasets.readers import open_table
from harness.datasets.report import FileReport
from streamrec.contracts.items import Item
from streamrec.settings import Settings

FLAG_SET = ("1", "true", "yes", "y", "t")


def _cell_text(cell: Any) -> str:
    return "" if cell is None else str(cell)


def _tags(cell: Any, separator: str) -> list[str]:
    if cell is None:
        return []
    parts = cell if isinstance(cell, (list, tuple)) else str(cell).split(separator)
    return [str(p).strip() for p in parts if str(p).strip()]


def _flag(cell: Any) -> bool:
    return cell is True or (not isinstance(cell, bool) and str(cell).strip().lower() in FLAG_SET)


def read_items(description: ItemsDescription, settings: Settings | None = None) -> tuple[list[Item], FileReport]:
    """The catalogue of the items file, in file order, and the file's report."""
    d, settings = description, settings or Settings()
    table = open_table(d.source)
    def label(key: str) -> str:
        return key_label(key, "items")

    ident = column(table, d.id_col, label("id_col"))
    title = column(table, d.title_col, label("title_col"), default="title")
    text = column(table, d.text_col, label("text_col"), default="text") if d.text_template is None else None
    fields = template_fields(d.text_template) if d.text_template is not None else []
    for name in fields:
        column(table, name, label("text_template"))
    tags = column(table, d.tags_col, label("tags_col"), default="tags")
    flags = [column(table, name, label("tag_flag_cols")) for name in d.tag_flag_cols]
    wanted = list(dict.fromkeys([ident] + [c for c in (title, text, tags) if c] + fields + flags))
    report, items, seen = FileReport(str(d.source.path), table.unit), [], set()
    for where, cells in table.rows(wanted, report):
        cell = dict(zip(wanted, cells))
        item_id = cell[ident].strip() if isinstance(cell[ident], str) else cell[ident]
        if item_id is None or item_id == "":
            report.reject("missing_field", where, f"{ident} is empty")
            continue
        if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
            report.reject("bad_type", where, f"{ident} must be text or an integer")
            continue
        item_id = str(item_id)
        if len(item_id) > settings.max_id_length or not item_id.isprintable():
            report.reject("bad_id", where, f"{ident} must be 1..{settings.max_id_length} printable characters")
            continue
        if item_id in seen:
            report.reject("duplicate_id", where, f"{item_id!r} was described on an earlier line")
            continue
        seen.add(item_id)
        body = _cell_text(cell[text]) if text else ""
        if fields and any(_cell_text(cell[f]) for f in fields):
            body = d.text_template.format(**{f: _cell_text(cell[f]) for f in fields})
        labels = _tags(cell[tags], d.tag_sep) if tags else []
        labels += [name for name in flags if _flag(cell[name])]
        items.append(Item(item_id=item_id, title=_cell_text(cell[title]) if title else "", text=body,
                          tags=tuple(labels)))
    return items, report
