"""How long the whole notebook takes: kernel time from its first cell to its last, and the slowest cells.

    .venv/bin/python benchmarks/notebook_time.py            # timings stored by the last ./export_pdf.sh
    .venv/bin/python benchmarks/notebook_time.py --run      # run it now (full mode) into build/, then report

Reads the execution timestamps that nbclient stores in every code cell (metadata.execution).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root, as for every script here
from scripts.execute_notebook import committed_seconds  # noqa: E402  (a cell's seconds, as the runner's estimates use)


def stamp(cell, event: str) -> datetime:
    """When `event` ('iopub.execute_input' or 'shell.execute_reply') happened for a code cell."""
    return datetime.fromisoformat(cell.metadata["execution"][event].rstrip("Z"))


def label(cell) -> str:
    """What a code cell does: the title of its training, else its first line."""
    title = re.search(r'title="([^"]+)"', cell.source)
    return title.group(1) if title else cell.source.splitlines()[0].lstrip("# ")[:90]


def report(notebook: Path, top: int = 8) -> None:
    """Print the kernel time of an executed notebook and its `top` slowest cells."""
    cells = [c for c in nbformat.read(notebook, as_version=4).cells
             if c.cell_type == "code" and "execution" in c.metadata]
    if not cells:
        sys.exit(f"{notebook} holds no execution timings: run ./export_pdf.sh (or pass --run) first")
    seconds = (stamp(cells[-1], "shell.execute_reply") - stamp(cells[0], "iopub.execute_input")).total_seconds()
    print(f"{notebook.name}: {seconds:.1f} s of kernel time, {len(cells)} code cells")
    for cell in sorted(cells, key=committed_seconds, reverse=True)[:top]:
        print(f"{committed_seconds(cell):7.1f} s  {label(cell)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="execute the notebook (full mode) into build/ first")
    args = parser.parse_args()
    notebook = ROOT / "assignment3.ipynb"
    if args.run:
        (ROOT / "build").mkdir(exist_ok=True)
        timed = ROOT / "build" / "timed.ipynb"
        subprocess.run([str(ROOT / ".venv/bin/python"), "scripts/execute_notebook.py", str(notebook), str(timed)],
                       cwd=ROOT, check=True)
        notebook = timed
    report(notebook)


if __name__ == "__main__":
    main()
