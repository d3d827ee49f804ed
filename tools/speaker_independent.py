"""Regenerate results/speaker_independent.json, which the notebook's "Beyond the assignment" reads.

    python tools/speaker_independent.py              # every recipe in study.RECIPES
    python tools/speaker_independent.py waveform     # only the named recipes; the others are kept
    python tools/speaker_independent.py --baseline   # the pocketsphinx baseline (requirements-study.txt)
    python tools/speaker_independent.py --screen nicolas,george,jackson mfcc_cmvn   # a few folds only
    python tools/speaker_independent.py --weight     # the recognizer's MFCC weight: screened, selection bias

Each recipe is trained 6 times leave-one-speaker-out, once on FSDD's official split and 3 times
(seeds 0, 1, 2) on the notebook's random 2/3 split. The baseline needs no training: it is scored on
every speaker's recordings and on both test sets. Screening trains only the folds of the named
held-out speakers and stores them under "screening". Reads the recordings like the notebook does
(helpers.download_fsdd(); set FSDD_SOURCE to a local archive to skip the download).
mfcc_cmvn (7.7 min), waveform (21.6) and filterbank (12.0) were trained with 2 threads
(OMP_WAIT_POLICY=PASSIVE) on 2 CPU cores partly shared with other jobs; mfcc_cmvn_x3 (16.9) and the
screenings with 1 thread on one core (taskset -c 1; shared at times with test runs, which inflated some
screenings' "seconds per fold"); embedding (6.9 min) with 1 thread, niced, on a core shared with other
work, from its cached features (recognizer.training_features: the speech embeddings of the recordings
and their 8 copies each, 8.7 min once, kept in models/). Each recipe's "seconds" is stored.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers  # noqa: E402
import study  # noqa: E402


def main(args: list[str]) -> None:
    """Evaluate the named recipes (all by default), the baseline or a screening; merge into the results file."""
    helpers.set_threads()
    if args[:1] == ["--baseline"]:
        results = study.update_baseline(helpers.download_fsdd())
        print(f"pocketsphinx: mean {results['baselines']['pocketsphinx']['loso_mean']:.3f}")
    elif args[:1] == ["--weight"]:
        entry = study.update_weight_screening(helpers.download_fsdd())["screening"]["embedding+mfcc weight"]
        print(f"leaving one speaker out, mean by weight {entry['loso_mean by weight']}; random split by weight "
              f"{entry['random by weight']}; chosen without the speaker: {entry['loso_mean']:.4f}")
    elif args[:1] == ["--screen"]:
        for name in args[2:]:
            study.update_screening(helpers.download_fsdd(), name, args[1].split(","))
    else:
        results = study.update_results(helpers.download_fsdd(), args or list(study.RECIPES))
        print(f"wrote {study.RESULTS_FILE}: {results['seconds'] / 60:.1f} minutes of training in all")


if __name__ == "__main__":
    main(sys.argv[1:])
