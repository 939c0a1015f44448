"""The design the code and README cite ("DESIGN §N") is in the repository, and the README names
every server `make test` needs."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.check_services import NEEDS

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
CITATION = re.compile(r"DESIGN §(\d+)")
CITING = ("README.md", "DEVELOPERS.md", "docs", "referral_service", "fhir_adapters", "workers")


def _citing_files() -> list[Path]:
    files: list[Path] = []
    for name in CITING:
        path = ROOT / name
        files += [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.md")]
    return files


def test_every_design_section_cited_exists_in_docs_design() -> None:
    sections = set(re.findall(r"^## (\d+)\. ", DESIGN.read_text(), flags=re.MULTILINE))
    cited = {
        (str(path.relative_to(ROOT)), number)
        for path in _citing_files()
        for number in CITATION.findall(path.read_text())
    }
    assert cited, "the code cites the design"
    assert {(path, n) for path, n in cited if n not in sections} == set()


def test_the_readme_cites_the_design_by_its_path() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "DESIGN §" not in readme.replace('"DESIGN §N"', "")
    assert "(docs/design.md) §3" in readme
    assert "`docs/design.md`" in readme


def test_the_readme_names_every_server_make_test_needs() -> None:
    [make_test] = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("make test")
    ]
    for server in NEEDS:
        assert server in make_test, server
