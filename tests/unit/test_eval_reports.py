"""What `streamrec evaluate` writes beside its JSON: the Markdown report, the per-window CSV, the plots."""
from __future__ import annotations

import csv
import json

import matplotlib.pyplot as plt
import pytest

from harness.evaluation import metrics, report, tables
from harness.evaluation.prequential import prequential
from streamrec.baselines import ItemKNN, MostPopular


@pytest.fixture(scope="module")
def doc(ml100k):
    out = prequential(ml100k, {"popular": MostPopular(), "item-knn": ItemKNN()}, limit=2000, windows=4,
                      bootstrap=100)
    out.update(created="2026-12-02T10:00:00+00:00", command="streamrec evaluate --dataset ml-100k --limit 2000",
               load_report=ml100k.report.to_dict())
    return out


def test_windows_csv_has_a_row_per_window_and_a_column_per_method_and_metric(doc, tmp_path):
    md_path, csv_path = tables.write_tables(doc, tmp_path / "evaluate-ml-100k.json")
    assert csv_path.name == "evaluate-ml-100k-windows.csv" and md_path.name == "evaluate-ml-100k.md"
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    metric_columns = [c for c in rows[0] if ":" in c]
    assert len(metric_columns) == 2 * len(metrics.LABELS)
    assert {"popular:recall", "item-knn:map", "item-knn:hr"} <= set(metric_columns)
    assert [int(r["window"]) for r in rows] == [1, 2, 3, 4]
    assert sum(int(r["requests"]) for r in rows) == 2000 and rows[-1]["last_event"] == "1999"
    assert rows[0]["first_time"] == "1997-09-20T03:05:10Z"
    for r, window in zip(rows, doc["methods"]["item-knn"]["windows"]):
        assert float(r["item-knn:hr"]) == pytest.approx(window["hr"], abs=1e-6)


def test_markdown_report_describes_the_run_and_gives_every_interval(doc, ml100k):
    text = tables.markdown(doc)
    assert "2026-12-02, `streamrec evaluate --dataset ml-100k --limit 2000`" in text
    for line in ml100k.report.lines():          # rows read, kept, rejected; users, items, the span
        assert line.strip() in text
    assert "span: 1997-09-20 to 1998-04-22 (215 days)" in text
    item_knn = doc["methods"]["item-knn"]
    low, high = item_knn["intervals"]["map"]
    assert tables.with_interval(item_knn["overall"]["map"], [low, high]) in text
    reference = doc["differences"]["reference"]
    other = "item-knn" if reference == "popular" else "popular"
    diff = doc["differences"]["methods"][other]["warm"]["recall"]
    assert tables.with_interval(diff["difference"], diff["interval"], signed=True) in text
    assert f"## Against the best baseline ({reference}, by HR@10)" in text
    assert "### Cold requests" in text and "### Warm requests" in text


def test_report_command_rewrites_the_tables_from_the_json(doc, tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    assert report.main([str(path)]) == 0
    assert (tmp_path / "run.md").read_text() == tables.markdown(doc)
    assert (tmp_path / "run-windows.csv").exists() and (tmp_path / "run-over-time.png").exists()
    assert "against the best baseline" in capsys.readouterr().out


def test_plot_has_its_legend_outside_the_panels_and_events_on_the_x_axis(doc):
    fig = report.over_time_figure(doc)
    try:
        assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["popular", "item-knn"]
        line = fig.axes[0].get_lines()[0]
        windows = doc["methods"]["popular"]["windows"]
        assert fig.axes[0].get_xlabel() == "events replayed"
        assert list(line.get_xdata()) == [(w["first_event"] + w["last_event"]) / 2 + 1 for w in windows]
    finally:
        plt.close(fig)


def test_every_method_of_a_full_run_looks_different():
    names = [f"baseline-{j}" for j in range(6)] + [f"system-{j}" for j in range(6)]
    styles = [report.method_style(j, name) for j, name in enumerate(names)]
    assert len({(s["color"], s["marker"]) for s in styles}) == len(names)
    assert len({s["marker"] for s in styles}) == len(names)
    assert {s["linestyle"] for s in styles[6:]} == {"--"} and {s["linestyle"] for s in styles[:6]} == {"-"}


def test_summary_has_a_line_per_method_and_per_full_sweep_point():
    doc = {"dataset": "toy", "protocol": {"k": 10, "scored": 4},
           "methods": {name: {"overall": {"hr": hr, "ndcg": 0.1, "recall": 0.1, "map": 0.1},
                              "intervals": {"hr": [hr - 0.01, hr + 0.01]},
                              "segments": {"cold": {"hr": 0.3, "intervals": {}}, "warm": {"hr": 0.4}}}
                       for name, hr in (("base", 0.5), ("system", 0.25))},
           "differences": {"reference": "base", "chosen_by": "hr", "methods": {
               "system": {"overall": {"hr": {"difference": -0.25, "interval": [-0.3, -0.2]}}},
               "system (diversity 0)": {"overall": {"hr": {"difference": 0.125, "interval": [0.1, 0.15]}}}}},
           "sweeps": {"system": [{"diversity_weight": 0.0, "requests": 4, "hr": 0.625},
                                 {"diversity_weight": 0.5, "requests": 1, "hr": 0.0}]}}
    lines = tables.summary_section(doc)
    assert lines[2] == "| method | HR@10 | NDCG@10 | recall@10 | MAP@10 | HR@10 cold | HR@10 warm | Δ HR@10 vs base |"
    assert lines[4].startswith("| base | 0.5000 [0.490, 0.510] |") and lines[4].endswith("| (the baseline) |")
    assert lines[5].endswith("| 0.3000 | 0.4000 | -0.2500 [-0.3000, -0.2000] |")
    assert lines[6].startswith("| system (diversity 0) | 0.6250 |") and lines[6].endswith("+0.1250 [+0.1000, +0.1500] |")
    assert len(lines) == 8          # the point that served one request of four has no line
