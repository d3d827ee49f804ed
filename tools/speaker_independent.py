"""Regenerate results/speaker_independent.json, which the notebook's "Beyond the assignment" reads.

    python tools/speaker_independent.py              # every recipe in study.RECIPES
    python tools/speaker_independent.py waveform     # only the named recipes; the others are kept

Each recipe is trained 6 times leave-one-speaker-out, once on FSDD's official split and 3 times
(seeds 0, 1, 2) on the notebook's random 2/3 split. Reads the recordings like the notebook does
(helpers.download_fsdd(); set FSDD_SOURCE to a local archive to skip the download).
The committed file took 43.8 minutes of training (2 threads, OMP_WAIT_POLICY=PASSIVE, on 2 CPU
cores partly shared with other jobs): mfcc 2.6, mfcc_cmvn 7.7, waveform 21.6, filterbank 12.0;
each recipe's "seconds" is stored. `A3_STUDY=1` makes the notebook run the same code first.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers  # noqa: E402
import study  # noqa: E402


def main(names: list[str]) -> None:
    """Evaluate the named recipes (all by default) and merge their results into the results file."""
    results = study.update_results(helpers.download_fsdd(), names or list(study.RECIPES))
    print(f"wrote {study.RESULTS_FILE}: {results['seconds'] / 60:.1f} minutes of training in all")


if __name__ == "__main__":
    main(sys.argv[1:])
