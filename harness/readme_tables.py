"""Keep the generated tables (settings, metrics) of docs/operations.md in step with the code (``make readme``)."""
from __future__ import annotations

import re
from pathlib import Path

from streamrec.settings import settings_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"   # the file that carries both generated tables


def _replace(text: str, marker: str, table: str) -> str:
    block = f"<!-- {marker}:start -->\n{table}\n<!-- {marker}:end -->"
    return re.sub(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->", lambda _: block, text, flags=re.S)


def render(text: str) -> str:
    """``text`` with its generated tables (settings, metrics) rebuilt from the code."""
    from harness.status import metric_table

    return _replace(_replace(text, "settings-table", settings_table()), "metrics-table", metric_table())


def main() -> None:
    OPERATIONS.write_text(render(OPERATIONS.read_text()))


if __name__ == "__main__":
    main()
