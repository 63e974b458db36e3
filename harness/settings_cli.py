"""``streamrec settings``: every setting, its variable, its current value and its meaning.

Secrets (a name with the word password, token, secret or key) are shown as ``***`` when
set: this output ends up in terminals, tickets and CI logs.
"""
from __future__ import annotations

import argparse
import dataclasses

from streamrec.settings import Settings, settings_table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="streamrec settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table of docs/operations.md")
    args = parser.parse_args(argv)
    if args.markdown:
        print(settings_table())
        return 0
    current = Settings.from_env()
    for f in dataclasses.fields(current):
        print(f"{f.metadata['env']:36} = {current.shown(f.name)!s:24}  {f.metadata['doc']}")
    return 0
