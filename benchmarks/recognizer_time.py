"""How long tools/recognize.py takes, as a user runs it: its first run (trains), then reading 1 and 100 files.

    .venv/bin/python benchmarks/recognizer_time.py              # into a fresh models folder (trains: minutes)
    .venv/bin/python benchmarks/recognizer_time.py --models M   # with the model already in M (seconds)

Each run is the command line in its own process; its wall time, CPU time (user + system) and peak memory
(resident set) come from the operating system (os.wait4: the finished child's own usage). This script
imports nothing but the standard library: Linux counts a forked child's memory before exec in its peak, so
a parent that had imported torch would add its own 600 MB. The 100 files are the first 100 FSDD recordings
(helpers.download_fsdd, in another process; set FSDD_SOURCE offline). Report the machine's other load beside
the numbers: a busy core slows the first run's embeddings, which use every core.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_100 = ("import sys; sys.path.insert(0, sys.argv[1]); import helpers\n"
             "print(*helpers.list_recordings(helpers.download_fsdd(sys.argv[1] + '/data'))[:100], sep='\\n')")


def timed_run(models: Path, files: list[Path]) -> dict:
    """Run tools/recognize.py on `files` with `models`: wall seconds, CPU seconds, peak MB, lines printed."""
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, str(ROOT / "tools" / "recognize.py"), "--models", str(models),
                           *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as child:
        lines = child.stdout.read().splitlines()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"tools/recognize.py failed (exit status {child.returncode})")
    return {"wall s": round(time.perf_counter() - start, 1), "cpu s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak MB": round(usage.ru_maxrss / 1024), "lines": len(lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="a models folder that holds the trained recognizer")
    args = parser.parse_args()
    files = subprocess.run([sys.executable, "-c", FIRST_100, str(ROOT)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    with tempfile.TemporaryDirectory() as fresh:
        models = args.models or Path(fresh)
        if args.models is None:
            print("first run (trains)", timed_run(models, files[:1]), flush=True)
        print("1 file", timed_run(models, files[:1]), flush=True)
        print("100 files", timed_run(models, files), flush=True)


if __name__ == "__main__":
    main()
