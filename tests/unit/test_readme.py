"""The README is the front door (the two commands first, short, links that resolve); the
operations guide lists every setting and every metric the code has."""
import re

from harness.readme_tables import OPERATIONS, README, ROOT, render


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.read_text().splitlines()[:12])
    assert "make demo" in head and "make test" in head


def test_readme_is_a_front_door():
    assert len(README.read_text().splitlines()) <= 250


def test_links_and_cited_paths_in_the_docs_exist():
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
        for path in re.findall(r"`((?:streamrec|streams|learner|serving|harness|tests|deploy)/[\w./-]+)", text):
            path = path.split("::")[0]
            assert (ROOT / path).exists(), f"{doc.name}: {path} does not exist"


def test_generated_tables_are_current():
    text = OPERATIONS.read_text()
    assert "<!-- settings-table:start -->" in text and "<!-- metrics-table:start -->" in text
    assert render(text) == text, "docs/operations.md tables are stale: run `make readme`"
