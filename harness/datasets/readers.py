"""Reading one file as named columns: delimited text (CSV, TSV, ``::``), JSON lines or Parquet.

:func:`open_table` looks at the file once (its format, delimiter and column names) and
returns a :class:`Table`; :meth:`Table.rows` then yields, for every row, the cells of the
columns asked for. A row the reader itself cannot use (malformed JSON, the wrong number of
fields, bytes that are not the file's encoding) is counted as rejected in the
:class:`~harness.datasets.report.FileReport`, with its line number, and not yielded.

The format comes from the extension (``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``/
``.json``, ``.parquet``/``.pq``; anything else is delimited text) unless given. The
delimiter of delimited text is guessed from its first lines unless given: the first of tab,
comma, semicolon, pipe and ``::`` that splits at least 80% of them into the same number (two
or more) of fields.

Examples
--------
>>> import tempfile, os
>>> from harness.datasets.report import FileReport
>>> path = Path(tempfile.mkdtemp()) / "log.csv"
>>> _ = path.write_text("user_id;item_id;timestamp\\nu1;a;1700000000\\nu2;b\\n")
>>> table = open_table(Source(path))
>>> table.delimiter, table.columns
(';', ['user_id', 'item_id', 'timestamp'])
>>> report = FileReport(str(path))
>>> list(table.rows(["item_id", "user_id"], report)), dict(report.rejected)
([(2, ['a', 'u1'])], {'field_count': 1})
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from harness.datasets.description import Source
from harness.datasets.errors import DatasetError, DatasetNotFound
from harness.datasets.report import FileReport

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = ("\t", ",", ";", "|", "::")
SAMPLE_LINES = 50


@dataclass
class Table:
    source: Source
    format: str
    columns: list[str]
    delimiter: str | None = None
    skip_first: bool = False    # the first line is a header

    @property
    def unit(self) -> str:
        return "row" if self.format == "parquet" else "line"

    def rows(self, wanted: list[str], report: FileReport) -> Iterator[tuple[int, list[Any]]]:
        """(line or row number, the cells of ``wanted``) per usable row; the rest go to ``report``."""
        if self.format == "jsonl":
            return _json_rows(self, wanted, report)
        if self.format == "parquet":
            return _parquet_rows(self, wanted, report)
        return _delimited_rows(self, wanted, report)


def detect_format(source: Source) -> str:
    return source.format or EXTENSIONS.get(source.path.suffix.lower(), "csv")


def open_table(source: Source) -> Table:
    """Look at ``source`` once: its format, delimiter and column names."""
    if not source.path.is_file():
        raise DatasetNotFound(f"{source.path}: no such file")
    fmt = detect_format(source)
    if fmt == "parquet":
        return Table(source, fmt, list(_pyarrow().read_schema(source.path).names))
    if fmt == "jsonl":
        return Table(source, fmt, _json_columns(source))
    with _open_text(source) as fh:
        sample = [line for line in islice(fh, SAMPLE_LINES) if line.strip()]
    if not sample:
        raise DatasetError(f"{source.path} is empty")
    delimiter = source.delimiter or ("\t" if fmt == "tsv" else _sniff(sample, source))
    header = source.header if source.header is not None else not source.columns
    first = _split_lines(sample[:1], delimiter, source.quote)[0]
    columns = list(source.columns) if source.columns else [c.strip() for c in first]
    return Table(source, fmt, columns, delimiter, skip_first=header)


def _open_text(source: Source):
    # utf-8-sig reads plain UTF-8 too and drops the byte-order mark spreadsheets write.
    encoding = "utf-8-sig" if source.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else source.encoding
    try:
        return open(source.path, encoding=encoding, errors="surrogateescape", newline="")
    except LookupError:
        raise DatasetError(f"{source.path}: unknown encoding {source.encoding!r}") from None


def _plain(delimiter: str, quote: str) -> bool:
    """Split on the delimiter as it is (no quoting): asked for, or a delimiter csv cannot take."""
    return not quote or len(delimiter) > 1


def _split_lines(lines: list[str], delimiter: str, quote: str) -> list[list[str]]:
    if _plain(delimiter, quote):
        return [line.rstrip("\r\n").split(delimiter) for line in lines]
    return list(csv.reader(lines, delimiter=delimiter, quotechar=quote))


def _sniff(sample: list[str], source: Source) -> str:
    lines = sample[:-1] if len(sample) > 1 else sample   # the last may be cut short by a quoted newline
    for delimiter in DELIMITERS:
        try:
            counts = Counter(len(row) for row in _split_lines(lines, delimiter, source.quote))
        except csv.Error:
            continue
        # Most lines, not all: a few malformed rows are for the load report, not a reason to fail.
        fields, agreeing = counts.most_common(1)[0]
        if fields >= 2 and agreeing >= 0.8 * len(lines):
            return delimiter
    raise DatasetError(f"{source.path}: cannot tell the delimiter from its first lines (tried tab, comma, "
                       "semicolon, pipe, ::); give it with --delimiter (TOML: delimiter)")


def _text_rows(table: Table, fh) -> Iterator[tuple[int, list[str]]]:
    if _plain(table.delimiter, table.source.quote):
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line.rstrip("\r\n").split(table.delimiter)
        return
    reader = csv.reader(fh, delimiter=table.delimiter, quotechar=table.source.quote)
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise DatasetError(f"{table.source.path}, line {reader.line_num}: {exc}") from None


def _delimited_rows(table: Table, wanted: list[str], report: FileReport) -> Iterator[tuple[int, list[Any]]]:
    index = [table.columns.index(c) for c in wanted]
    n = len(table.columns)
    with _open_text(table.source) as fh:
        rows = _text_rows(table, fh)
        if table.skip_first:
            next(rows, None)
        for number, row in rows:
            report.read()
            if len(row) != n:
                report.reject("field_count", number, f"{len(row)} fields, the header has {n}")
                continue
            cells = [row[i] for i in index]
            if not _encodes(cells):
                report.reject("bad_encoding", number, f"not {table.source.encoding} (set the encoding)")
                continue
            yield number, cells


def _encodes(cells: list[str]) -> bool:
    """False when a cell holds bytes the file's encoding could not decode (kept as surrogates)."""
    try:
        "".join(cells).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _json_columns(source: Source) -> list[str]:
    """The keys of the first objects of a JSON-lines file, in order of first appearance."""
    keys: dict[str, None] = {}
    with open(source.path, encoding=source.encoding, errors="replace") as fh:
        for line in islice(fh, 100):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                keys.update(dict.fromkeys(doc))
    return list(keys)


def _json_rows(table: Table, wanted: list[str], report: FileReport) -> Iterator[tuple[int, list[Any]]]:
    with open(table.source.path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            report.read()
            try:
                doc = json.loads(raw.decode(table.source.encoding))
            except UnicodeDecodeError:
                report.reject("bad_encoding", number, f"not {table.source.encoding}")
                continue
            except (ValueError, RecursionError) as exc:
                report.reject("bad_json", number, str(exc))
                continue
            if not isinstance(doc, dict):
                report.reject("not_an_object", number, f"a JSON {type(doc).__name__}, not an object")
                continue
            yield number, [doc.get(c) for c in wanted]


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install 'streamrec[parquet]' (or pyarrow)") from None
    return pq


def _parquet_rows(table: Table, wanted: list[str], report: FileReport) -> Iterator[tuple[int, list[Any]]]:
    pq = _pyarrow()
    parquet = pq.ParquetFile(table.source.path)
    number = 0
    for batch in parquet.iter_batches(columns=list(dict.fromkeys(wanted))):
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for cells in zip(*(columns[c] for c in wanted)):
            number += 1
            report.read()
            yield number, list(cells)
