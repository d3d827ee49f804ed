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
reader.speech_segments cut into as many parts as they have digits.
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
    """(sequences, their digits, single digits as read back from files, their digits) of one speaker."""
    recordings, y = data["recordings"], data["y"].numpy()
    picks = [rng.choice(test, rng.integers(3, 8)) for _ in range(SEQUENCES)]
    sequences = [study.assemble([recordings[i] for i in pick], rng) for pick in picks]
    singles = rng.choice(test, SINGLES, replace=False)
    files = [as_a_wav_file(study.assemble([recordings[i]], rng, lead=(2, 5)), folder, f"{n}.wav")
             for n, i in enumerate(singles)]
    return sequences, [y[p].tolist() for p in picks], files, y[singles].tolist()


def main(name: str = study.RECOGNIZER) -> None:
    """Train the recipe (the recognizer's by default) per held-out speaker, read its assembled recordings;
    write the results."""
    helpers.set_threads()
    start, recipe, rng = time.perf_counter(), study.RECIPES[name], np.random.default_rng(0)
    data = study.load_fsdd(helpers.download_fsdd())
    x = recognizer.training_features(recipe, data["recordings"])
    errors = digits = exact = split_right = single_right = singles = 0
    per_speaker = {}
    with tempfile.TemporaryDirectory() as folder:
        for speaker, train, test in study.speaker_folds(data["speakers"]):
            net = recognizer.fit(recipe, x[train], data["y"][train])
            sequences, truth, files, single_truth = held_out_recordings(data, test.numpy(), rng, Path(folder))
            read = reader.read_digits(recognizer.export(net, recipe), sequences + files)
            said = [digits_read for digits_read, _ in read]
            speaker_errors = sum(edit_distance(s, t) for s, t in zip(said, truth))
            speaker_exact = sum(s == t for s, t in zip(said, truth))
            speaker_split = sum(len(s) == len(t) for s, t in zip(said, truth))  # segmentation: as many parts as digits
            speaker_singles = sum(s == [t] for s, t in zip(said[len(sequences):], single_truth))
            per_speaker[speaker] = {"digit accuracy": round(1 - speaker_errors / sum(map(len, truth)), 4),
                                    "sequence accuracy": round(speaker_exact / len(truth), 4),
                                    "split right": round(speaker_split / len(truth), 4),
                                    "single digits": round(speaker_singles / len(single_truth), 4)}
            errors, digits, exact = errors + speaker_errors, digits + sum(map(len, truth)), exact + speaker_exact
            split_right += speaker_split
            single_right, singles = single_right + speaker_singles, singles + len(single_truth)
            print(speaker, per_speaker[speaker], flush=True)
    sequences = SEQUENCES * len(per_speaker)
    results = {"recipe": name, "sequences": sequences, "digits": digits,
               "digit accuracy": round(1 - errors / digits, 4), "sequence accuracy": round(exact / sequences, 4),
               "split right": round(split_right / sequences, 4),
               "single digits": singles, "single digit accuracy": round(single_right / singles, 4),
               "per speaker": per_speaker, "seconds": round(time.perf_counter() - start)}
    file = study.RECORDINGS_FILE if name == study.RECOGNIZER else study.RESULTS_FILE.parent / f"recordings-{name}.json"
    study.write_results(results, file)
    print({key: value for key, value in results.items() if key != "per speaker"})


if __name__ == "__main__":
    main(*sys.argv[1:2])
