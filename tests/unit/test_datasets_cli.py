"""``--dataset`` from the command line: a five-line CSV evaluated end to end, and every dataset
mistake a one-line error with exit status 2, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
CSV = ("user,item,ts,action\n"
       "alice,sku1,2024-03-01T10:00:00Z,pv\n"
       "bob,sku1,2024-03-01T10:05:00Z,buy\n"
       "alice,sku2,2024-03-01T11:00:00Z,pv\n"
       "bob,sku2,2024-03-01T11:30:00Z,pv\n"
       "carol,sku2,yesterday,pv\n")
FLAGS = ["--user-col", "user", "--item-col", "item", "--time-col", "ts", "--time-format", "iso",
         "--type-col", "action", "--type-map", "pv=view,buy=purchase"]


def streamrec(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    # This checkout's modules, whatever the installed console script points at.
    env = {**os.environ, "PYTHONPATH": str(REPO), "STREAMREC_STATE_DIR": str(cwd / "state")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def csv_dir(tmp_path):
    (tmp_path / "interactions.csv").write_text(CSV)
    return tmp_path


def test_evaluate_a_csv_end_to_end(csv_dir):
    run = streamrec(csv_dir, "evaluate", "--dataset", "interactions.csv", *FLAGS, "--methods", "popular,item-knn",
                    "--no-plots", "--out", "results")
    assert run.returncode == 0, run.stderr
    assert "5 rows read, 4 kept, 1 rejected" in run.stderr and "line 6: 'yesterday' is not ISO 8601" in run.stderr
    doc = json.loads((csv_dir / "results" / "evaluate-interactions.json").read_text())
    assert doc["dataset"] == "interactions" and doc["protocol"]["events"] == 4
    assert list(doc["methods"]) == ["popular", "item-knn"]
    report = doc["load_report"]
    assert report["events"]["rejected"] == {"bad_timestamp": 1}
    assert report["event_types"] == {"purchase": 1, "view": 3} and report["users"] == 2
    # The Markdown report carries the same description of the run, rejections included.
    markdown = (csv_dir / "results" / "evaluate-interactions.md").read_text()
    assert "5 rows read, 4 kept, 1 rejected" in markdown and "line 6: 'yesterday' is not ISO 8601" in markdown
    assert "4 events: 2 users, 2 items" in markdown


@pytest.mark.parametrize("command,argv,says", [
    ("evaluate", ["--dataset", "ml100k"], "not built in (ml-100k, movietweetings-100k)"),
    ("evaluate", ["--dataset", "interactions.csv"], "has no column 'user_id' (--user-col / user_col); its columns: "
                                                    "user, item, ts, action"),
    ("replay", ["--dataset", "interactions.csv", *FLAGS[:-2]], "no usable event"),
    ("replay", ["--dataset", "interactions.csv", *FLAGS[:-1], "pv=pageview"], "'pageview', which is not a declared event type"),
    ("simulate", ["--dataset", "missing.toml"], "missing.toml: no such description file"),
])
def test_dataset_mistakes_are_one_line(csv_dir, command, argv, says):
    run = streamrec(csv_dir, command, *argv)
    assert run.returncode == 2, run.stderr
    assert says in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
