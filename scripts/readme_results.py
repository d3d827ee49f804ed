"""Copy the results table of the executed notebook (every training run, from 3.6(f) to 3.9) into README.md.

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
    """The table of every run that the notebook shows at the end of 3.9."""
    for cell in reversed(nbformat.read(notebook, as_version=4).cells):
        tables = [o.data["text/markdown"] for o in cell.get("outputs", []) if "text/markdown" in o.get("data", {})]
        if tables and "Every run of this notebook" in tables[-1]:
            return tables[-1][tables[-1].index("| run"):].strip()
    raise SystemExit(f"{notebook} has no executed results table: run ./export_pdf.sh first")


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
