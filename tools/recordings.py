"""Recordings as people make them: how well tools/recognize.py's recipe reads digits from a speaker it never heard.

    python tools/recordings.py                  # writes study.RECORDINGS_FILE, results/recordings.json (minutes)
    python tools/recordings.py mfcc_cmvn        # another recipe of study.RECIPES: results/recordings-<name>.json

For every FSDD speaker, the recipe (recognizer.RECIPE unless named) is trained on the other five (the
study's leave-one-speaker-out folds) and reads recordings assembled from the held-out speaker's clips
(study.assemble):
- sequences: SEQUENCES per speaker, each of 3-7 random clips (a PIN, a phone number) with pauses of
  0.3-0.7 s, 0.5-3 s before and after, under white noise 10-30 dB below the speech;
- single digits: SINGLES per speaker, each clip with 2-5 s before and after under the same noise, written
  as a 44.1 kHz stereo 16-bit wav and read back through helpers.read_wav (resampled to 8 kHz, averaged).
Digit accuracy is 1 - (edit distance between the read and the true digits) / (true digits), pooled over
all sequences; sequence accuracy counts sequences read exactly; split right counts sequences that
reader.speech_segments cut into as many parts as they have digits; digit accuracy at the true cuts reads
every clip of the sequences where it lies, without the segmenter: what the segmentation costs. Clean
recording accuracy reads the held-out speaker's 500 FSDD recordings as they are, as tools/recognize.py
reads a file (segmented, a second look at unsure digits): right if read as exactly their digit.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import helpers  # noqa: E402
import reader  # noqa: E402
import recognizer  # noqa: E402
import study  # noqa: E402

SEQUENCES, SINGLES = 34, 50  # per held-out speaker: 204 sequences and 300 single digits in all


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance: insertions, deletions and substitutions that turn a into b."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def as_a_wav_file(waveform: np.ndarray, folder: Path, name: str) -> np.ndarray:
    """The 8 kHz waveform written as a 44.1 kHz stereo 16-bit wav and read back with helpers.read_wav."""
    loud = resample_poly(waveform, 441, 80)
    stereo = np.stack([loud, 0.8 * loud], 1)
    file = folder / name
    wavfile.write(file, 44100, (np.clip(stereo, -1, 1) * 32767).astype(np.int16))
    return helpers.read_wav(file)


def held_out_recordings(data: dict, test: np.ndarray, rng: np.random.Generator, folder: Path):
    """(sequences, their digits, the clips' spans in them, single digits as read back from files, their
    digits) of one speaker."""
    recordings, y = data["recordings"], data["y"].numpy()
    picks = [rng.choice(test, rng.integers(3, 8)) for _ in range(SEQUENCES)]
    sequences, spans = zip(*[study.assemble_with_spans([recordings[i] for i in pick], rng) for pick in picks])
    singles = rng.choice(test, SINGLES, replace=False)
    files = [as_a_wav_file(study.assemble([recordings[i]], rng, lead=(2, 5)), folder, f"{n}.wav")
             for n, i in enumerate(singles)]
    return list(sequences), [y[p].tolist() for p in picks], list(spans), files, y[singles].tolist()


def read_at_true_cuts(model: reader.Model, sequences: list[np.ndarray], spans: list) -> list[list[int]]:
    """The digits read in every sequence cut where its clips lie (not by the segmenter)."""
    parts = [[s[a:b] for a, b in clip_spans] for s, clip_spans in zip(sequences, spans)]
    return [digits for digits, _ in reader.read_parts(model, parts)]


def speaker_counts(model: reader.Model, data: dict, test: np.ndarray, rng: np.random.Generator, folder: Path) -> dict:
    """What the model reads right of one held-out speaker's assembled recordings and clean recordings."""
    sequences, truth, spans, files, single_truth = held_out_recordings(data, test, rng, folder)
    clean, clean_truth = [data["recordings"][i] for i in test], data["y"].numpy()[test].tolist()
    said = [digits for digits, _ in reader.read_digits(model, sequences + files + clean)]
    said, said_singles, said_clean = said[:len(sequences)], said[len(sequences):-len(clean)], said[-len(clean):]
    return {"sequences": len(truth), "digits": sum(map(len, truth)),
            "digit errors": sum(edit_distance(s, t) for s, t in zip(said, truth)),
            "right at the true cuts": sum(int(np.equal(s, t).sum())
                                          for s, t in zip(read_at_true_cuts(model, sequences, spans), truth)),
            "exact": sum(s == t for s, t in zip(said, truth)),
            "split right": sum(len(s) == len(t) for s, t in zip(said, truth)),  # as many parts as digits
            "singles": len(single_truth), "singles right": sum(s == [t] for s, t in zip(said_singles, single_truth)),
            "clean": len(clean), "clean right": sum(s == [t] for s, t in zip(said_clean, clean_truth))}


def rates(counts: dict) -> dict:
    """The results file's accuracies from speaker_counts' counts (of one speaker or summed over all)."""
    return {"digit accuracy": round(1 - counts["digit errors"] / counts["digits"], 4),
            "digit accuracy at the true cuts": round(counts["right at the true cuts"] / counts["digits"], 4),
            "sequence accuracy": round(counts["exact"] / counts["sequences"], 4),
            "split right": round(counts["split right"] / counts["sequences"], 4),
            "single digit accuracy": round(counts["singles right"] / counts["singles"], 4),
            "clean recording accuracy": round(counts["clean right"] / counts["clean"], 4)}


def main(name: str = study.RECOGNIZER) -> None:
    """Train the recipe (the recognizer's by default) per held-out speaker, read its assembled recordings and
    its clean ones; write the results."""
    helpers.set_threads()
    start, recipe, rng = time.perf_counter(), study.RECIPES[name], np.random.default_rng(0)
    data = study.load_fsdd(helpers.download_fsdd())
    x = recognizer.training_features(recipe, data["recordings"])
    counts = {}
    with tempfile.TemporaryDirectory() as folder:
        for speaker, train, test in study.speaker_folds(data["speakers"]):
            model = recognizer.export(recognizer.fit(recipe, x[train], data["y"][train]), recipe)
            counts[speaker] = speaker_counts(model, data, test.numpy(), rng, Path(folder))
            print(speaker, rates(counts[speaker]), flush=True)
    total = {key: sum(c[key] for c in counts.values()) for key in next(iter(counts.values()))}
    results = {"recipe": name, "second look": reader.second_look(), "sequences": total["sequences"],
               "digits": total["digits"], "single digits": total["singles"], "clean recordings": total["clean"],
               **rates(total), "per speaker": {s: rates(c) for s, c in counts.items()},
               "seconds": round(time.perf_counter() - start)}
    file = study.RECORDINGS_FILE if name == study.RECOGNIZER else study.RESULTS_FILE.parent / f"recordings-{name}.json"
    study.write_results(results, file)
    print({key: value for key, value in results.items() if key != "per speaker"})


if __name__ == "__main__":
    main(*sys.argv[1:2])
