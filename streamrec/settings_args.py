"""One mapping from :class:`~streamrec.settings.Settings` to a process's command line.

Every setting a process reads is an option of that process, written the same way in each:
``--field-name VALUE`` (``--flag/--no-flag`` for a yes/no setting), its help ending in
``[env VARIABLE] (default: D)``. An option given wins over the environment variable, which
wins over the default. A process declares what it reads as a tuple of field names, built
from the groups below plus its own section (:func:`section`).

Examples
--------
>>> parser = settings_parser("streamrec example", ("partitions", "log_json"))
>>> args, settings = parse_settings(parser, ["--partitions", "8"], environ={"STREAMREC_LOG_JSON": "true"})
>>> settings.partitions, settings.log_json
(8, True)
>>> "[env STREAMREC_PARTITIONS] (default: 4)" in " ".join(parser.format_help().split())
True
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from streamrec.settings import Settings, is_secret

# Groups of settings several processes read (each process adds its own section).
KAFKA = ("bootstrap_servers", "partitions", "replication_factor", "topic_prefix", "session_timeout_s",
         "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile")
# What an event means (streamrec.contracts.semantics): every process that reads events reads all three.
EVENT_SEMANTICS = ("event_weights", "value_rule", "repeat_consumption")
EVENT_INPUT = ("max_message_bytes", "max_id_length", "max_future_skew_s", "min_timestamp", "deletion_signing_key",
               *EVENT_SEMANTICS)
USER_HISTORY = ("recent_items", "seen_items", "dedup_ids", "vector_dim")
ONLINE_STATE = ("user_vector_half_life_s", "popularity_half_life_s")
MODELS = ("model_signing_key", "model_max_bytes", "model_read_timeout_s")
PROCESS = ("state_dir", "http_host", "log_level", "log_json")

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def section(prefix: str) -> tuple[str, ...]:
    """The fields whose names start with ``prefix`` (a process's own section).

    >>> section("cooccurrence_")[:2]
    ('cooccurrence_weight', 'cooccurrence_window')
    """
    return tuple(name for name in _FIELDS if name.startswith(prefix))


def option(name: str) -> str:
    """The command-line option of a setting: ``learner_port`` -> ``--learner-port``."""
    return "--" + name.replace("_", "-")


def settings_parser(prog: str, fields: Iterable[str], description: str | None = None,
                    aliases: Mapping[str, Sequence[str]] | None = None) -> argparse.ArgumentParser:
    """An argument parser with one option per setting in ``fields`` (``aliases``: extra spellings).

    Options default to ``None`` (not given), so :func:`parse_settings` can tell an option
    given from one left to the environment.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, usage="%(prog)s [options]",
                                     epilog="Each option defaults to its environment variable, then to the "
                                            "default shown. `streamrec settings` lists every setting.")
    group = parser.add_argument_group("settings")
    for name in dict.fromkeys(fields):   # declared order, once each
        f = _FIELDS[name]
        names = [option(name), *(aliases or {}).get(name, ())]
        kind = str(f.type)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "unset" if default is None else "empty" if default == "" else default
        text = f"{f.metadata['doc']} [env {f.metadata['env']}] (default: {shown})"
        if is_secret(name):
            text += " Prefer the environment variable: a command-line value shows in `ps`."
        text = text.replace("%", "%%")   # argparse formats help with %; a setting's text may hold one
        if "bool" in kind:
            group.add_argument(*names, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            convert = _converter(kind)
            group.add_argument(*names, dest=name, type=convert, default=None, help=text,
                               metavar=_METAVARS[convert])
    parser.set_defaults(_settings_fields=tuple(dict.fromkeys(fields)))
    return parser


def parse_settings(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """Parse ``argv`` and build the settings: options over ``environ`` (default ``os.environ``).

    A malformed environment value ends the process like a malformed option: usage, the
    message, exit status 2.
    """
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in args._settings_fields}
    try:
        return args, Settings.from_env(environ, **overrides)
    except ValueError as exc:
        parser.error(str(exc))
        raise   # parser.error exits; this line only tells type checkers so


_METAVARS = {int: "N", float: "X", Path: "PATH", str: "TEXT"}


def _converter(kind: str):
    if kind.startswith("int"):
        return int
    if kind.startswith("float"):
        return float
    return Path if "Path" in kind else str
