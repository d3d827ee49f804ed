"""Execute a notebook as `jupyter nbconvert --config scripts/nbconvert_config.py --execute` does, showing progress.

    .venv/bin/python scripts/execute_notebook.py assignment3.ipynb assignment3.ipynb   # in place
    .venv/bin/python scripts/execute_notebook.py assignment3.ipynb build/out.ipynb

Runs nbconvert's own exporter and ExecutePreprocessor (same config: no cell time-out, kernel from
the notebook, per-cell timestamps in metadata.execution) in the repository root, and reports on
stderr: code cells done / total, the section (3.x and question), the training running now with
its epoch (helpers.report_progress writes it to the file A3_PROGRESS_FILE names), the elapsed time
and an estimate of the time left (the committed run's per-cell times, scaled by this run's speed).
A bar redraws in place on a terminal; otherwise plain lines. OUT is written only when every cell
succeeded; a failing cell stops with its section, first line and error (exit status 1).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, TextIO

import nbformat
from nbclient.exceptions import CellExecutionError
from nbconvert import NotebookExporter
from traitlets.config.loader import PyFileConfigLoader
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the repository root's modules
from atomic import write_atomically  # noqa: E402
PROGRESS_ENV = "A3_PROGRESS_FILE"  # helpers.report_progress writes "title<TAB>epoch<TAB>epochs" there
SECTION = re.compile(r"^#{1,3}\s+(\d+\.\d+|Appendix)\b", re.MULTILINE)
QUESTION = re.compile(r"^\*\*\(([a-z])\)", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PRIOR_SECONDS = 10.0  # the committed speed counts as this many seconds of evidence
POLL_SECONDS = 0.5
LINE_SECONDS = 30.0  # plain lines during a training: at most this often ...
LINE_FRACTION = 0.1  # ... and once per this fraction of its epochs


@dataclass
class Step:
    """One code cell to execute: where it is in the notebook and how long the committed run took."""
    index: int
    section: str
    position: str
    first_line: str
    seconds: float


def committed_seconds(cell) -> float:
    """Seconds the stored run spent in a code cell (nbclient's metadata.execution), 0 when not stored."""
    stamps = cell.metadata.get("execution", {})
    try:
        start, end = (datetime.fromisoformat(stamps[k].rstrip("Z"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def plan(nb) -> list[Step]:
    """The code cells nbclient will execute, each with its section (last `## 3.x` heading) and question."""
    section, question, steps = "start", "", []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for heading in SECTION.findall(cell.source):
                section, question = heading, ""
            question = (QUESTION.findall(cell.source) or [question])[-1]
        elif cell.cell_type == "code" and cell.source.strip():
            position = f"{section}({question})" if question else section
            steps.append(Step(index, section, position, cell.source.strip().splitlines()[0],
                              committed_seconds(cell)))
    return steps


def clock(seconds: float) -> str:
    """Seconds as [H:]MM:SS."""
    return tqdm.format_interval(seconds)


class Bar(tqdm):
    """tqdm with free text after the bar: `{after}` in bar_format."""
    after = ""

    @property
    def format_dict(self) -> dict:
        """tqdm's fields plus `after`."""
        return {**super().format_dict, "after": self.after}


class Progress:
    """State of the run and its display: a bar redrawn in place (terminal) or plain lines (`bar=False`)."""

    def __init__(self, steps: list[Step], out: TextIO, bar: bool, now: Callable[[], float] = time.monotonic):
        self.steps, self.out, self.now = steps, out, now
        self.lock = threading.Lock()
        self.start = now()
        self.done, self.measured, self.cell_start = 0, 0.0, self.start
        self.current: Step | None = None  # the code cell running now
        self.last: Step | None = None  # the last one started (the failing one after an error)
        self.training: tuple[str, int, int] | None = None
        self.timed = any(step.seconds for step in steps)
        self.printed: dict = {}  # what the last plain line showed: section, title, epoch, time
        self.bar = Bar(total=1000, file=out, bar_format="{desc} |{bar:24}| {after}", dynamic_ncols=True,
                       mininterval=0) if bar else None

    def cell_started(self, step: Step) -> None:
        """A code cell starts: a plain line when its section is new."""
        with self.lock:
            self.current, self.last, self.cell_start, self.training = step, step, self.now(), None
            self.printed["title"] = None  # a training in this cell gets its own first line
            if not self.bar and step.section != self.printed.get("section"):
                self._line()
            self._redraw()

    def cell_finished(self) -> None:
        """The current code cell replied."""
        with self.lock:
            self.done += 1
            self.measured += self.now() - self.cell_start
            self.current, self.training = None, None
            self._redraw()

    def trained(self, title: str, epoch: int, epochs: int) -> None:
        """A training reported an epoch: a plain line for a new title, then every 10 % of epochs and 30 s."""
        with self.lock:
            if not self.current:  # read after its cell finished
                return
            self.training = (title, epoch, epochs)
            if not self.bar and self._line_due(title, epoch, epochs):
                self._line()
            self._redraw()

    def tick(self) -> None:
        """Redraw the bar (elapsed time and estimate move on)."""
        with self.lock:
            self._redraw()

    def close(self) -> None:
        """Leave the final state of the bar on the terminal."""
        if self.bar:
            self.bar.close()

    def left(self) -> float | None:
        """Estimated seconds left; None without stored timings."""
        if not self.timed:
            return None
        in_cell = self.now() - self.cell_start if self.current else 0.0
        fraction = self.training[1] / self.training[2] if self.training and self.training[2] else 0.0
        committed_done = sum(step.seconds for step in self.steps[:self.done])
        speed = (self.measured + PRIOR_SECONDS) / (committed_done + PRIOR_SECONDS)
        rest = sum(step.seconds for step in self.steps[self.done + (self.current is not None):])
        if fraction:  # a running training: extrapolate its own epochs
            current = in_cell * (1 - fraction) / fraction
        else:
            current = max(0.0, self.current.seconds * speed - in_cell) if self.current else 0.0
        return current + rest * speed

    def what(self) -> str:
        """The section and question, or the training with its epoch."""
        if self.done == len(self.steps):
            return "done"
        if not self.training:
            return self.last.position if self.last else "starting"
        title, epoch, epochs = self.training
        where = "" if title.startswith(self.current.section) else f"{self.current.position} "
        return f"{where}{title}: epoch {epoch}/{epochs}"

    def status(self) -> str:
        """Cells done, elapsed time and the estimate."""
        left = self.left()
        estimate = "" if left is None else f", ~{clock(left)} left"
        return f"{self.done}/{len(self.steps)} cells, {clock(self.now() - self.start)} elapsed{estimate}"

    def _line_due(self, title: str, epoch: int, epochs: int) -> bool:
        """Whether a training's update earns a plain line."""
        if title != self.printed.get("title"):
            return True
        return (epoch - self.printed["epoch"] >= max(1.0, LINE_FRACTION * epochs)
                and self.now() - self.printed["time"] >= LINE_SECONDS)

    def _line(self) -> None:
        """Print one plain line and remember what it showed."""
        title, epoch = self.training[:2] if self.training else (None, None)
        self.printed = {"section": self.current.section if self.current else None, "title": title,
                        "epoch": epoch, "time": self.now()}
        print(f"[progress] {self.status()} | {self.what()}", file=self.out, flush=True)

    def _redraw(self) -> None:
        """Move the bar: by time when the committed run is timed, else by cells."""
        if not self.bar:
            return
        left, elapsed = self.left(), self.now() - self.start
        fraction = elapsed / (elapsed + left) if left is not None and elapsed + left > 0 \
            else self.done / max(1, len(self.steps))
        self.bar.n = round(1000 * (1.0 if self.done == len(self.steps) else fraction))
        self.bar.set_description_str(self.status(), refresh=False)
        self.bar.after = self.what()
        self.bar.refresh()


def read_training(path: Path) -> tuple[str, int, int] | None:
    """The last `title<TAB>epoch<TAB>epochs` line helpers.report_progress wrote, if any."""
    try:
        title, epoch, epochs = path.read_text().rstrip("\n").split("\t")
        return title, int(epoch), int(epochs)
    except (OSError, ValueError):
        return None


def watch(path: Path, progress: Progress, stop: threading.Event) -> None:
    """Poll the progress file twice a second until `stop`: report new epochs, redraw the bar."""
    seen = None
    while not stop.wait(POLL_SECONDS):
        training = read_training(path)
        if training and training != seen:
            progress.trained(*training)
        seen = training
        progress.tick()


def exporter(steps: list[Step], progress: Progress, progress_file: Path) -> NotebookExporter:
    """nbconvert's notebook exporter with scripts/nbconvert_config.py, --execute, and progress hooks."""
    by_index = {step.index: step for step in steps}

    def started(cell, cell_index: int) -> None:
        if cell_index in by_index:
            progress_file.unlink(missing_ok=True)  # no stale training from an earlier cell
            progress.cell_started(by_index[cell_index])

    config = PyFileConfigLoader("nbconvert_config.py", path=str(ROOT / "scripts")).load_config()
    config.ExecutePreprocessor.enabled = True
    config.ExecutePreprocessor.on_cell_start = started
    config.ExecutePreprocessor.on_cell_executed = lambda **_: progress.cell_finished()
    return NotebookExporter(config=config)


def failure(error: BaseException, progress: Progress, target: Path) -> str:
    """The message for a run that stopped: nbclient's report, then the cell's section, first line and error."""
    step = progress.last
    where = (f"cell {progress.steps.index(step) + 1} of {len(progress.steps)} ({step.position}): "
             f"{step.first_line}" if step else "before the first cell")
    if isinstance(error, CellExecutionError):
        report, name, value = ANSI.sub("", str(error)).rstrip() + "\n\n", error.ename, error.evalue
    else:
        report, name, value = "", type(error).__name__, str(error)
    return f"{report}Failed in {where}\n{name}: {value}\n{target} not written."


def execute(source: Path, target: Path, bar: bool) -> int:
    """Execute `source` into `target` (may be the same file) with progress on stderr; exit status."""
    nb = nbformat.read(source, as_version=4)
    steps = plan(nb)
    committed = sum(step.seconds for step in steps)
    print(f"Executing {source} ({len(steps)} code cells"
          + (f"; the committed run took {clock(committed)})" if committed else ")"), file=sys.stderr, flush=True)
    progress, stop, error = Progress(steps, sys.stderr, bar), threading.Event(), None
    with tempfile.TemporaryDirectory(prefix="a3-progress-") as folder:
        progress_file = Path(folder) / "progress"
        os.environ[PROGRESS_ENV] = str(progress_file)  # inherited by the kernel
        watcher = threading.Thread(target=watch, args=(progress_file, progress, stop), daemon=True)
        watcher.start()
        try:
            body, _ = exporter(steps, progress, progress_file).from_notebook_node(
                nb, resources={"metadata": {"path": str(ROOT)}})
        except (Exception, KeyboardInterrupt) as caught:  # reported below, then a non-zero exit
            error = caught
        finally:
            stop.set()
            watcher.join()
            progress.close()
    if error:
        print(failure(error, progress, target), file=sys.stderr, flush=True)
        return 130 if isinstance(error, KeyboardInterrupt) else 1
    write_atomically(target, body)
    print(f"Executed {len(steps)} code cells in {clock(time.monotonic() - progress.start)}; "
          f"wrote {target} ({len(body.encode()):,} bytes)", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str]) -> int:
    """Command line: IN OUT."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = map(Path, argv)
    return execute(source, target, bar=sys.stderr.isatty())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
