"""Keep the README's generated tables (settings, metrics) in step with the code (``make readme``)."""
from __future__ import annotations

import re
from pathlib import Path

from streamrec.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def _replace(text: str, marker: str, table: str) -> str:
    block = f"<!-- {marker}:start -->\n{table}\n<!-- {marker}:end -->"
    return re.sub(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->", lambda _: block, text, flags=re.S)


def render(text: str) -> str:
    """The README with its generated tables (settings, metrics) rebuilt from the code."""
    from harness.status import metric_table

    return _replace(_replace(text, "settings-table", settings_table()), "metrics-table", metric_table())


def main() -> None:
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
