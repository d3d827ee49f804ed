"""Copy the runs of the executed notebook (every training run, from 3.6(f) to 3.9) into README.md, as one table.

    .venv/bin/python scripts/readme_results.py          # after ./export_pdf.sh; rewrites the marked block

The block sits between the markers below, so the README shows the numbers of the committed run
(tests/test_readme.py checks that they agree).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from atomic import write_atomically  # noqa: E402
BEGIN, END = "<!-- results: scripts/readme_results.py -->", "<!-- /results -->"


def notebook_results(notebook: Path = ROOT / "assignment3.ipynb") -> str:
    """One table of every run: the rows of the run tables the executed notebook shows (3.6 to 3.9), in order."""
    tables = [o.data["text/markdown"].strip() for cell in nbformat.read(notebook, as_version=4).cells
              for o in cell.get("outputs", []) if o.get("data", {}).get("text/markdown", "").startswith("| run |")]
    if not tables:
        raise SystemExit(f"{notebook} has no executed run tables: run ./export_pdf.sh first")
    header = tables[0].splitlines()[:2]
    return "\n".join(header + [row for table in tables for row in table.splitlines()[2:]])


def readme_results(readme: Path = ROOT / "README.md") -> str:
    """The table between the markers in the README."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), readme.read_text(), re.S)
    if match is None:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block")
    return match.group(1).strip()


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text().replace(readme_results(readme), notebook_results())
    write_atomically(readme, text)
    print(f"updated the results table in {readme}")


if __name__ == "__main__":
    main()
