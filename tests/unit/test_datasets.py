"""Your own data: every file format, time format and type mapping, bad rows counted with
examples, flags and TOML describing the same dataset, and ``streamrec generate``'s output
read back as it was generated."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from harness.datasets import (DatasetDescription, DatasetError, DatasetNotFound, Source, describe, from_toml, load,
                              load_dataset)
from harness.datasets.flags import add_dataset_arguments, flag_options
from harness.synthetic import generate
from harness.synthetic import main as generate_main

ROWS = [("alice", "sku1", 1709287200, "pv", 4), ("bob", "sku1", 1709287500, "buy", 5),
        ("alice", "sku2", 1709290800, "pv", 3)]


def _write(path, text: str):
    path.write_text(text)
    return path


def _csv(tmp_path, sep=",", name="log.csv"):
    lines = [sep.join(("user_id", "item_id", "timestamp", "event_type", "rating"))]
    lines += [sep.join(map(str, row)) for row in ROWS]
    return _write(tmp_path / name, "\n".join(lines) + "\n")


def _same_events(ds):
    assert ds.user_ids.tolist() == ["alice", "bob", "alice"]
    assert ds.item_ids.tolist() == ["sku1", "sku1", "sku2"]
    assert ds.timestamps.tolist() == [1709287200.0, 1709287500.0, 1709290800.0]
    assert ds.event_types.tolist() == ["view", "purchase", "view"]
    assert ds.values.tolist() == [4.0, 5.0, 3.0]


@pytest.mark.parametrize("sep,name", [(",", "log.csv"), (";", "log.csv"), ("\t", "log.tsv"), ("\t", "log.txt"),
                                      ("|", "log.dat"), ("::", "log.dat")])
def test_delimited_text_with_any_delimiter(tmp_path, sep, name):
    ds = load_dataset(str(_csv(tmp_path, sep, name)), type_map="pv=view,buy=purchase", value_col="rating")
    _same_events(ds)
    assert ds.report.events.rows == 3 and not ds.report.events.rejected


def test_an_explicit_delimiter_and_a_headerless_file(tmp_path):
    path = _write(tmp_path / "log.txt", "".join(f"{u} {i} {t} {e} {v}\n" for u, i, t, e, v in ROWS))
    ds = load_dataset(str(path), delimiter=" ", columns="user_id,item_id,timestamp,event_type,rating",
                      type_map={"pv": "view", "buy": "purchase"}, value_col="rating")
    _same_events(ds)


def test_quoted_csv_fields_keep_their_delimiters(tmp_path):
    path = _write(tmp_path / "log.csv", 'user_id,item_id,timestamp\n"smith, j",a,1700000000\n')
    assert load_dataset(str(path)).user_ids.tolist() == ["smith, j"]


def test_json_lines(tmp_path):
    path = _write(tmp_path / "log.jsonl", "".join(
        json.dumps({"user_id": u, "item_id": i, "timestamp": t, "event_type": e, "rating": v}) + "\n"
        for u, i, t, e, v in ROWS))
    _same_events(load_dataset(str(path), type_map="pv=view,buy=purchase", value_col="rating"))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    columns = list(zip(*ROWS))
    table = pa.table({"user_id": list(columns[0]), "item_id": list(columns[1]), "timestamp": list(columns[2]),
                      "event_type": list(columns[3]), "rating": list(columns[4])})
    pq.write_table(table, tmp_path / "log.parquet")
    ds = load_dataset(str(tmp_path / "log.parquet"), type_map="pv=view,buy=purchase", value_col="rating")
    _same_events(ds)
    assert ds.report.events.unit == "row"


@pytest.mark.parametrize("time_format,cells", [
    ("seconds", ["1709287200", "1709287500.0", "1709290800"]),
    ("ms", ["1709287200000", "1709287500000", "1709290800000"]),
    ("iso", ["2024-03-01T10:00:00Z", "2024-03-01T11:05:00+01:00", "2024-03-01T11:00:00"]),
    ("%d/%m/%Y %H:%M", ["01/03/2024 10:00", "01/03/2024 10:05", "01/03/2024 11:00"]),
])
def test_every_time_format(tmp_path, time_format, cells):
    text = "user_id,item_id,when\n" + "".join(f"{u},{i},{c}\n" for (u, i, *_), c in zip(ROWS, cells))
    ds = load_dataset(str(_write(tmp_path / "log.csv", text)), time_col="when", time_format=time_format)
    assert ds.timestamps.tolist() == [1709287200.0, 1709287500.0, 1709290800.0]


def test_events_are_sorted_by_time_stably(tmp_path):
    # Many ties (numpy's default sort is stable only on short arrays): ties keep file order.
    times = np.random.default_rng(0).integers(0, 5, 400) + 1_700_000_000
    text = "user_id,item_id,timestamp\n" + "".join(f"u,{j},{t}\n" for j, t in enumerate(times))
    ds = load_dataset(str(_write(tmp_path / "log.csv", text)))
    assert ds.item_ids.tolist() == [str(j) for j in sorted(range(400), key=lambda j: times[j])]


def test_default_type_is_click_or_rating_or_given(tmp_path):
    path = _write(tmp_path / "log.csv", "user_id,item_id,timestamp,stars\nu,a,1700000000,4\n")
    assert load_dataset(str(path)).event_types.tolist() == ["click"]
    assert load_dataset(str(path), value_col="stars").event_types.tolist() == ["rating"]
    assert load_dataset(str(path), default_type="view").event_types.tolist() == ["view"]
    assert load_dataset(str(path)).values.tolist() == [1.0]


def test_bad_rows_are_counted_with_examples(tmp_path):
    text = ("user_id,item_id,timestamp,event_type,value\n"
            "u1,a,1700000000,click,1\n"          # line 2: fine
            ",a,1700000000,click,1\n"            # 3: no user
            "u1,b,noon,click,1\n"                # 4: bad time
            "u1,c,1700000000,teleport,1\n"       # 5: unknown type
            "u1,d,1700000000,click,lots\n"       # 6: bad value
            "u1,e,1700000000\n"                  # 7: too few fields
            "u1,f,-5,click,1\n"                  # 8: before the contract's earliest time
            "u1,g,noon,click,1\nu1,h,noon,click,1\nu1,i,noon,click,1\n")   # 9-11: more bad times
    ds = load_dataset(str(_write(tmp_path / "log.csv", text)))
    r = ds.report.events
    assert (r.rows, r.kept, len(ds)) == (10, 1, 1)
    assert dict(r.rejected) == {"missing_field": 1, "bad_timestamp": 4, "unknown_event_type": 1, "bad_value": 1,
                                "field_count": 1, "timestamp_out_of_range": 1}
    assert [line for line, _ in r.examples["bad_timestamp"]] == [4, 9, 10]       # three examples, not four
    assert r.examples["unknown_event_type"][0][0] == 5 and "teleport" in r.examples["unknown_event_type"][0][1]
    text = "\n".join(ds.report.lines())
    assert "bad_timestamp: 4 (line 4: 'noon' is not epoch seconds" in text and "1 events: 1 users" in text
    examples = ds.report.to_dict()["events"]["examples"]
    assert examples["field_count"] == [{"line": 7, "detail": "3 fields, the header has 5"}]


def test_bad_json_lines_and_undecodable_bytes(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"user_id": "u", "item_id": "a", "timestamp": 1700000000}\n{oops\n[1]\n'
                     b'{"user_id": "\xff", "item_id": "a", "timestamp": 1700000000}\n')
    assert dict(load_dataset(str(path)).report.events.rejected) == {"bad_json": 1, "not_an_object": 1,
                                                                    "bad_encoding": 1}
    latin = tmp_path / "log.csv"
    latin.write_bytes(b"user_id,item_id,timestamp\nu,a,1700000000\nJos\xe9,b,1700000000\n")
    assert dict(load_dataset(str(latin)).report.events.rejected) == {"bad_encoding": 1}
    assert load_dataset(str(latin), encoding="latin-1").user_ids.tolist() == ["u", "José"]


def test_items_file_with_tags_and_items_without_one(tmp_path):
    events = _csv(tmp_path)
    _write(tmp_path / "items.csv", "sku,name,about,cats\nsku1,Lamp,A lamp,home;light\nsku1,Dup,,\n,Nameless,,\n")
    ds = load_dataset(str(events), type_map="pv=view,buy=purchase", value_col="rating",
                      items={"path": str(tmp_path / "items.csv"), "id_col": "sku", "title_col": "name",
                             "text_col": "about", "tags_col": "cats", "tag_sep": ";"})
    assert [(it.item_id, it.title, it.text, it.tags) for it in ds.items] == [("sku1", "Lamp", "A lamp",
                                                                             ("home", "light"))]
    assert dict(ds.report.items.rejected) == {"duplicate_id": 1, "missing_field": 1}
    assert ds.report.items_without_metadata == 1          # sku2 has events but no entry


def test_a_missing_column_names_the_columns_found(tmp_path):
    with pytest.raises(DatasetError, match=r"has no column 'user_id' \(--user-col / user_col\); its columns: "
                                           r"who, item_id, timestamp"):
        load_dataset(str(_write(tmp_path / "log.csv", "who,item_id,timestamp\nu,a,1\n")))
    with pytest.raises(DatasetError, match="no column 'stars'"):
        load_dataset(str(_csv(tmp_path)), value_col="stars")


def test_unusable_descriptions_are_one_clear_error(tmp_path):
    path = str(_csv(tmp_path))
    with pytest.raises(DatasetError, match="not built in .*ml-100k.*path to a CSV"):
        describe("no-such-dataset")
    with pytest.raises(DatasetError, match="'pageview', which is not a declared event type"):
        load_dataset(path, type_map="pv=pageview")
    with pytest.raises(DatasetError, match="time format 'dd/mm'"):
        describe(path, events={"time_format": "dd/mm"})
    with pytest.raises(DatasetError, match="ml-100k is built in"):
        describe("ml-100k", events={"user_col": "u"})
    with pytest.raises(DatasetError, match="give it with --items-file"):
        describe(path, items={"title_col": "t"})
    with pytest.raises(DatasetError, match="no usable event"):
        load_dataset(path)                                 # pv and buy are not event types
    with pytest.raises(DatasetNotFound):
        from_toml(tmp_path / "missing.toml")


TOML = """
name = "shop"
[events]
path = "log.csv"
user_col = "who"
time_col = "when"
time_format = "iso"
type_col = "action"
type_map = { pv = "view", buy = "purchase" }
value_col = "stars"

[items]
path = "items.tsv"
title_col = "name"
tags_col = "cats"
tag_sep = ","
"""


def test_toml_and_flags_describe_the_same_dataset(tmp_path, monkeypatch):
    _write(tmp_path / "log.csv", "who,item_id,when,action,stars\nalice,sku1,2024-03-01T10:00:00Z,pv,4\n"
                                 "bob,sku1,2024-03-01T10:05:00Z,buy,5\n")
    _write(tmp_path / "items.tsv", "item_id\tname\tcats\nsku1\tLamp\thome,light\n")
    _write(tmp_path / "shop.toml", TOML)
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    args = parser.parse_args(["--dataset", "log.csv", "--user-col", "who", "--time-col", "when", "--time-format",
                              "iso", "--type-col", "action", "--type-map", "pv=view,buy=purchase", "--value-col",
                              "stars", "--items-file", "items.tsv", "--title-col", "name", "--tags-col", "cats",
                              "--tag-sep", ","])
    monkeypatch.chdir(tmp_path)                             # flags' paths are relative to where you are
    events, items = flag_options(args)
    from_flags, from_file = describe(args.dataset, None, events, items), from_toml(tmp_path / "shop.toml")
    assert from_flags == from_file.__class__(**{**from_file.__dict__, "name": "log"})
    a, b = load_dataset("log.csv", items=items, **events), load_dataset(str(tmp_path / "shop.toml"))
    assert b.name == "shop" and a.name == "log"
    for column in ("user_ids", "item_ids", "timestamps", "values", "event_types"):
        assert getattr(a, column).tolist() == getattr(b, column).tolist()
    assert a.items == b.items and b.items[0].tags == ("home", "light")


def test_toml_mistakes_name_the_key(tmp_path):
    _write(tmp_path / "bad.toml", '[events]\npath = "log.csv"\nuser_column = "who"\n')
    with pytest.raises(DatasetError, match=r"bad.toml: \[events\] has no key 'user_column'; known: path, "):
        from_toml(tmp_path / "bad.toml")
    _write(tmp_path / "broken.toml", '[events\n')
    with pytest.raises(DatasetError, match="not valid TOML"):
        from_toml(tmp_path / "broken.toml")


def test_what_streamrec_generate_writes_reads_back_as_generated(tmp_path):
    out = tmp_path / "synthetic.jsonl"
    assert generate_main(["--users", "30", "--items", "20", "--events", "500", "--seed", "4", "--out", str(out)]) == 0
    ds, original = load_dataset(str(out)), generate(users=30, items=20, events=500, seed=4)
    assert ds.user_ids.tolist() == original.user_ids.tolist()
    assert ds.item_ids.tolist() == original.item_ids.tolist()
    assert np.array_equal(ds.timestamps, original.timestamps)
    assert set(ds.event_types.tolist()) == {"click"} and not ds.report.events.rejected


def test_a_header_renamed_and_quotes_kept_as_data(tmp_path):
    path = _write(tmp_path / "log.csv", 'who,what,when\n"u1,a,1700000000\n')
    source = Source(path, header=True, quote="", columns=("user_id", "item_id", "timestamp"))
    ds = load(DatasetDescription("log", source))
    assert ds.user_ids.tolist() == ['"u1'] and ds.report.events.rows == 1
