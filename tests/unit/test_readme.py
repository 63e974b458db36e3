"""The README is the front door: it must open with the two commands and list every setting."""
from harness.readme_tables import README, render


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.read_text().splitlines()[:12])
    assert "make demo" in head and "make test" in head


def test_settings_table_is_current():
    text = README.read_text()
    assert render(text) == text, "README settings table is stale: run `make readme`"
