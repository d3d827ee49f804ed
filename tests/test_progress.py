"""scripts/execute_notebook.py: progress lines (cells, section, training epoch, estimate) and a failing cell's message."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import helpers
from conftest import ROOT

RUNNER = ROOT / "scripts" / "execute_notebook.py"
from scripts import execute_notebook as runner

TRAINING = """
import time, helpers
for epoch in range(1, 4):
    time.sleep(0.7)
    helpers.report_progress("3.6(f) tiny training", epoch, 3)
"""


def timed(cell, seconds: float):
    """`cell` with execution timestamps as nbclient stores them, `seconds` apart."""
    start = datetime(2026, 1, 1)
    cell.metadata["execution"] = {"iopub.execute_input": start.isoformat() + "Z",
                                  "shell.execute_reply": (start + timedelta(seconds=seconds)).isoformat() + "Z"}
    return cell


def notebook(path: Path, *cells) -> Path:
    """Write a python3 notebook of `cells` to `path`."""
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                  "display_name": "Python 3"}})
    nbformat.write(nb, path)
    return path


def run(source: Path, target: Path) -> subprocess.CompletedProcess:
    """The runner on `source`, its output captured (not a terminal: plain lines)."""
    return subprocess.run([sys.executable, str(RUNNER), str(source), str(target)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_plain_lines_show_cells_section_training_and_estimate(tmp_path):
    source = notebook(tmp_path / "in.ipynb",
                      new_markdown_cell("## 3.5 Spoken digits\n\n**(a) Load them.**"),
                      timed(new_code_cell("x = 1"), 2),
                      new_markdown_cell("## 3.6 A network"),
                      timed(new_code_cell("y = 2"), 2),
                      new_markdown_cell("**(f) Train it.**"),
                      timed(new_code_cell(TRAINING), 60))
    result = run(source, tmp_path / "out.ipynb")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[progress]")]
    assert re.match(r"\[progress\] 0/3 cells, 00:\d\d elapsed, ~\d\d:\d\d left \| 3\.5\(a\)$", lines[0]), lines
    assert re.match(r"\[progress\] 1/3 cells, .* left \| 3\.6$", lines[1]), lines
    assert re.match(r"\[progress\] 2/3 cells, .* left \| 3\.6\(f\) tiny training: epoch [1-3]/3$", lines[2]), lines
    assert len(lines) == 3
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert all("execution" in c.metadata and c.outputs == [] for c in executed.cells if c.cell_type == "code")


@pytest.mark.slow
def test_a_failing_cell_names_section_first_line_and_error_and_writes_nothing(tmp_path):
    source = notebook(tmp_path / "in.ipynb",
                      new_markdown_cell("### 3.8 Variations\n\n**(c) Batch norm.**"),
                      new_code_cell("a = 1"),
                      new_code_cell("b = a / 0  # the broken one\nc = 2"),
                      new_code_cell("d = 3"))
    target = tmp_path / "out.ipynb"
    result = run(source, target)
    assert result.returncode == 1
    assert "Failed in cell 2 of 3 (3.8(c)): b = a / 0  # the broken one\nZeroDivisionError: division by zero\n" \
        in result.stderr
    assert "[progress]" in result.stderr and "left" not in result.stderr  # no stored timings: no estimate
    assert not target.exists() and list(tmp_path.iterdir()) == [source]


@pytest.mark.slow
def test_in_place_failure_keeps_the_notebook(tmp_path):
    source = notebook(tmp_path / "in.ipynb", new_code_cell("raise RuntimeError('stop here')"))
    before = source.read_bytes()
    result = run(source, source)
    assert result.returncode == 1 and "RuntimeError: stop here" in result.stderr
    assert source.read_bytes() == before and list(tmp_path.iterdir()) == [source]


def test_estimate_scales_the_committed_times_by_this_runs_speed():
    steps = [runner.Step(i, "3.6", "3.6", "x = 1", seconds) for i, seconds in enumerate([10.0, 10.0, 100.0, 20.0])]
    now = 0.0
    progress = runner.Progress(steps, sys.stderr, bar=False, now=lambda: now)
    progress.cell_started(steps[0])
    now = 30.0  # slower than committed: speed (30 + 10) / (10 + 10) = 2 with the prior of 10 s
    progress.cell_finished()
    assert progress.left() == pytest.approx((10 + 100 + 20) * 2.0)
    progress.cell_started(steps[1])
    progress.cell_finished()  # instantly: speed (30 + 10) / (20 + 10)
    progress.cell_started(steps[2])
    now = 40.0
    progress.trained("3.6(f) run", 2, 8)  # a quarter of its epochs in 10 s: 30 s more for this cell
    assert progress.left() == pytest.approx(30.0 + 20 * 40 / 30)
    assert progress.what() == "3.6(f) run: epoch 2/8"
    assert progress.status() == "2/4 cells, 00:40 elapsed, ~00:56 left"
    now = 1000.0
    progress.cell_finished()  # speed (30 + 0 + 970 + 10) / (120 + 10)
    progress.cell_started(steps[3])
    assert progress.left() == pytest.approx(20 * 1010 / 130)
    now = 5000.0  # the last cell overran its estimate: none left, never a negative time
    assert progress.left() == 0.0 and progress.status().endswith("~00:00 left")


def test_report_progress_writes_one_line_and_never_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("A3_PROGRESS_FILE", str(tmp_path / "progress"))
    helpers.report_progress("3.8(a) dropout\tas given", 57, 200)
    assert runner.read_training(tmp_path / "progress") == ("3.8(a) dropout as given", 57, 200)
    assert list(tmp_path.iterdir()) == [tmp_path / "progress"]
    monkeypatch.setenv("A3_PROGRESS_FILE", str(tmp_path / "gone" / "progress"))
    helpers.report_progress("x", 1, 2)  # no folder: no error (the training goes on), nothing written
    assert list(tmp_path.iterdir()) == [tmp_path / "progress"]
    assert runner.read_training(tmp_path / "progress") == ("3.8(a) dropout as given", 57, 200)


def test_plain_lines_during_a_training_every_10_percent_and_30_seconds():
    out, now = io.StringIO(), 0.0
    progress = runner.Progress([runner.Step(0, "3.8", "3.8(a)", "x", 0.0)], out, bar=False, now=lambda: now)
    progress.cell_started(progress.steps[0])
    every_30_seconds, every_20_epochs = list(range(1, 200, 30)), list(range(1, 200, 20))
    for seconds_per_epoch, lines in [(1.0, every_30_seconds), (2.0, every_20_epochs)]:
        out.seek(0)
        out.truncate()
        for epoch in range(1, 201):
            now += seconds_per_epoch
            progress.trained(f"dropout, {seconds_per_epoch} s per epoch", epoch, 200)
        assert [int(m) for m in re.findall(r"epoch (\d+)/200", out.getvalue())] == lines
    assert "left" not in out.getvalue()  # no stored timings: no estimate
