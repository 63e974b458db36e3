"""Keep the README's generated tables in step with the code (``make readme``)."""
from __future__ import annotations

import re
from pathlib import Path

from streamrec.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def render(text: str) -> str:
    block = f"<!-- settings-table:start -->\n{settings_table()}\n<!-- settings-table:end -->"
    return re.sub(r"<!-- settings-table:start -->.*?<!-- settings-table:end -->", lambda _: block, text,
                  flags=re.S)


def main() -> None:
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
