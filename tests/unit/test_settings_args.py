"""The one settings -> command-line mapping: precedence, and every process's shell alike.

"Every setting a process reads is an option of that process" is checked from the sources:
the settings fields named anywhere in the project modules a process's main reaches must be
options of its parser.
"""
from __future__ import annotations

import ast
import dataclasses

import pytest

from streamrec.settings import Settings
from streamrec.settings_args import option, parse_settings, settings_parser
from tests.unit.test_layers import REPO, _reach, project_modules

FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Settings read through a method or property rather than by field name.
INDIRECT = {"topic": ("topic_prefix",), "semantics": ("event_weights", "value_rule", "repeat_consumption"),
            "secrets": (), "shown": ()}


def process_parsers():
    from learner.main import build_parser as learner
    from serving.main import build_parser as serving
    from streams.worker import build_parser as streams

    return {"streams.worker": streams(), "learner.main": learner(), "serving.main": serving()}


def settings_named(module: str) -> set[str]:
    parts = module.split(".")
    path = REPO.joinpath(*parts).with_suffix(".py")
    if not path.exists():
        path = REPO.joinpath(*parts, "__init__.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        name = node.attr if isinstance(node, ast.Attribute) else None
        if name in FIELDS:
            found.add(name)
        elif name in INDIRECT:
            found.update(INDIRECT[name])
    return found


def test_options_win_over_the_environment_which_wins_over_defaults():
    parser = settings_parser("t", ("partitions", "topic_prefix", "log_json", "state_dir"))
    env = {"STREAMREC_PARTITIONS": "6", "STREAMREC_TOPIC_PREFIX": "env-", "STREAMREC_LOG_JSON": "true"}
    _, s = parse_settings(parser, ["--partitions", "9", "--no-log-json"], env)
    assert (s.partitions, s.topic_prefix, s.log_json, str(s.state_dir)) == (9, "env-", False, "var")
    _, s = parse_settings(parser, [], {})
    assert (s.partitions, s.topic_prefix, s.log_json) == (4, "", False)


def test_a_bad_value_in_the_environment_or_an_option_exits_with_usage(capsys):
    parser = settings_parser("t", ("partitions",))
    for argv, env in ((["--partitions", "many"], {}), ([], {"STREAMREC_PARTITIONS": "many"})):
        with pytest.raises(SystemExit) as exit_:
            parse_settings(parser, argv, env)
        assert exit_.value.code == 2
    assert "STREAMREC_PARTITIONS='many': expected a number" in capsys.readouterr().err


def test_every_setting_a_process_reads_is_an_option_of_it():
    graph = project_modules()
    for main, parser in process_parsers().items():
        options = {a.dest for a in parser._actions}
        reached = [m for m in _reach(graph, main) if m != "streamrec.settings" and not m.startswith("harness")]
        read = set().union(*(settings_named(m) for m in reached))
        assert read - options == set(), f"{main} reads settings it has no option for"
        assert "bootstrap_servers" in read and len(read) > 25   # the scan sees the reads at all


def test_every_process_writes_its_options_alike():
    for main, parser in process_parsers().items():
        settings_actions = [a for a in parser._actions if a.dest in FIELDS]
        for action in settings_actions:
            f = FIELDS[action.dest]
            assert option(f.name) in action.option_strings
            assert f"[env {f.metadata['env']}] (default: " in action.help, (main, f.name)


def test_cooccurrence_settings_are_options_of_serve():
    _, s = parse_settings(process_parsers()["serving.main"], ["--cooccurrence-weight", "0.5"], {})
    assert s.cooccurrence_weight == 0.5
