"""Beyond the assignment: how well do the networks recognize a speaker they never heard?

Leave-one-speaker-out, official-split and random-split evaluation of several recipes (front end,
network, augmentation; recognizer.Recipe, trained by recognizer.fit) and of a pocketsphinx baseline,
run by tools/speaker_independent.py and shown in the notebook's appendix; recordings assembled as people
make them (assemble) for tools/recordings.py. The recognizer itself (tools/recognize.py) lives in
recognizer.py (training) and reader.py (reading), which this module imports. The notebook's own answers
(its networks and datasets) stay in the notebook; this study has its own. Recipes only screened on a few speakers are kept in the results
file (descriptions and numbers), not as code.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import nn

import helpers
import reader
import recognizer
from atomic import write_atomically
from recognizer import Combination, Recipe, conv_bn_relu, gap_head

RESULTS_FILE = Path(__file__).parent / "results" / "speaker_independent.json"
RECORDINGS_FILE = RESULTS_FILE.parent / "recordings.json"  # tools/recordings.py: sequences, long recordings
SPLIT_SEED = 0  # the notebook's SEED, so the random 2/3 split is the one of 3.5
RANDOM_SEEDS = (0, 1, 2)  # the training runs on that split, one per seed


# -----------------------------------------------------------------------------
# Data: every recording, and recordings as people make them

def load_fsdd(data_dir: str | os.PathLike) -> dict:
    """Every recording in data_dir as read ("recordings": float32 arrays of any length), as standardized
    waveforms (N, 1, SIZE) and MFCCs (N, 13, 74), with digit labels, speakers and take indices,
    in sorted file order."""
    files = helpers.list_recordings(data_dir)
    parsed = [helpers.parse_file_name(f) for f in files]
    recordings = [helpers.read_wav(f) for f in files]
    return {"recordings": recordings, "waveform": torch.from_numpy(reader.waveform_features(recordings)),
            "mfcc": torch.from_numpy(reader.mfcc_features(recordings)),
            "y": torch.tensor([digit for digit, _, _ in parsed]),
            "speakers": [speaker for _, speaker, _ in parsed], "indices": [index for _, _, index in parsed]}


def assemble_with_spans(clips: list[np.ndarray], rng: np.random.Generator, pause: tuple[float, float] = (0.3, 0.7),
                        lead: tuple[float, float] = (0.5, 3.0),
                        snr_db: tuple[float, float] = (10, 30)) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One recording as people make them, and the (start, end) samples of every clip in it: the clips in
    order, each as loud as the others (mean power -20 dB of full scale, +-3 dB), with pauses of `pause`
    seconds between them and `lead` seconds before the first and after the last, all under white noise
    snr_db below the clips' mean power (uniform draws)."""
    clips = [c / np.sqrt(np.square(c).mean() + 1e-12) * 10 ** ((rng.uniform(-3, 3) - 20) / 20) for c in clips]
    gaps = [rng.uniform(*lead), *(rng.uniform(*pause) for _ in clips[1:]), rng.uniform(*lead)]
    silences = [np.zeros(round(g * helpers.SAMPLE_RATE), np.float32) for g in gaps]
    x = np.concatenate([silences[0], *(part for clip, silence in zip(clips, silences[1:]) for part in (clip, silence))])
    starts = np.cumsum([len(silences[0])] + [len(c) + len(s) for c, s in zip(clips, silences[1:-1])])
    power = np.square(np.concatenate(clips)).mean()
    noise = rng.standard_normal(len(x)) * np.sqrt(power * 10 ** (-rng.uniform(*snr_db) / 10))
    return np.clip(x + noise, -1, 1).astype(np.float32), [(int(a), int(a) + len(c)) for a, c in zip(starts, clips)]


def assemble(clips: list[np.ndarray], rng: np.random.Generator, **options) -> np.ndarray:
    """assemble_with_spans' recording alone."""
    return assemble_with_spans(clips, rng, **options)[0]


# -----------------------------------------------------------------------------
# Splits and the study's own networks

def speaker_folds(speakers: list[str]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Leave-one-speaker-out: (held-out speaker, train indices, test indices) per speaker, sorted."""
    speakers = np.asarray(speakers)
    return [(s, torch.from_numpy(np.flatnonzero(speakers != s)), torch.from_numpy(np.flatnonzero(speakers == s)))
            for s in sorted(set(speakers))]


def official_split(indices: list[int], takes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """FSDD's own split: takes 0..takes-1 of every speaker and digit are the test set, the rest train."""
    indices = torch.as_tensor(indices)
    return torch.nonzero(indices >= takes).squeeze(1), torch.nonzero(indices < takes).squeeze(1)


def build_net_waveform(channels: int = 64) -> nn.Sequential:
    """M5 (Dai et al. 2017) for 1 x 6000 raw samples: a wide strided convolution (80 samples = 10 ms,
    stride 4), then 3-tap convolutions with max pooling, global average pooling and a linear layer."""
    return nn.Sequential(
        *conv_bn_relu(1, channels, 80, stride=4), nn.MaxPool1d(4),
        *conv_bn_relu(channels, channels), nn.MaxPool1d(4),
        *conv_bn_relu(channels, 2 * channels), nn.MaxPool1d(4),
        *conv_bn_relu(2 * channels, 2 * channels),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2 * channels, 10))


class Square(nn.Module):
    """x * x: the energy of a filter's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class LogEnergy(nn.Module):
    """log(x + eps): the compression of a filterbank's energies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x + 1e-4)


def build_net_filterbank(filters: int = 40, channels: int = 32) -> nn.Sequential:
    """For 1 x 6000 raw samples: a learned filterbank (101-tap convolution, squared, averaged over
    10 ms frames, log, normalized per utterance like CMVN), then gap_head over the 75 frames."""
    return nn.Sequential(
        nn.Conv1d(1, filters, 101, stride=4, padding=50, bias=False), Square(), nn.AvgPool1d(20),
        LogEnergy(), nn.InstanceNorm1d(filters), *gap_head(filters, channels))


# -----------------------------------------------------------------------------
# Evaluation of a recipe

def recordings_only(recipe: Recipe | Combination, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx] as the networks take it: the recordings, without their copies (training_features' axis 1)."""
    return x[idx, 0] if recipe.copies else x[idx]


def fit_predict(recipe: Recipe | Combination, x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor,
                test_idx: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Train recipe's network on x[train_idx] from seed `seed`; its predicted digits for x[test_idx]
    (recordings only, without their copies)."""
    net = recognizer.fit(recipe, x[train_idx], y[train_idx], seed)
    return helpers.predict_proba(net, recordings_only(recipe, x, test_idx), bf16=False).argmax(1)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """counts[i, j]: how many samples of class i were predicted as class j."""
    return torch.bincount(y_true * classes + y_pred, minlength=classes * classes).view(classes, classes)




def accuracy_of(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    return (y_pred == y_true).float().mean().item()


def random_split_indices(n: int, train_count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (train, test) indices that random_split(data, [train_count, n - train_count]) draws with `seed`."""
    train, test = torch.utils.data.random_split(range(n), [train_count, n - train_count],
                                                generator=torch.Generator().manual_seed(seed))
    return torch.tensor(train.indices), torch.tensor(test.indices)


def notebook_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (train, test) indices of the notebook's random 2/3 split of n recordings (SPLIT_SEED)."""
    return random_split_indices(n, round(n * 2 / 3), SPLIT_SEED)


def evaluate_recipe(recipe: Recipe | Combination, x: torch.Tensor, y: torch.Tensor, speakers: list[str], indices: list[int],
                    seeds: tuple[int, ...] = RANDOM_SEEDS) -> dict:
    """Leave-one-speaker-out accuracies (and pooled confusion matrix), the official-split accuracy and
    the random 2/3-split accuracies (one split, one training run per seed) of one recipe."""
    start, loso, counts = time.perf_counter(), {}, torch.zeros(10, 10, dtype=torch.long)
    for speaker, train_idx, test_idx in speaker_folds(speakers):
        y_pred = fit_predict(recipe, x, y, train_idx, test_idx)
        loso[speaker] = accuracy_of(y_pred, y[test_idx])
        counts += confusion_matrix(y[test_idx], y_pred)
    train_idx, test_idx = official_split(indices)
    official = accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx), y[test_idx])
    train_idx, test_idx = notebook_split(len(y))
    random = [accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx, seed), y[test_idx]) for seed in seeds]
    return {"loso": {s: round(acc, 4) for s, acc in loso.items()}, "loso_mean": round(np.mean(list(loso.values())), 4),
            "loso_worst": round(min(loso.values()), 4), "official": round(official, 4),
            "random": [round(acc, 4) for acc in random],
            "confusion": counts.tolist(), "seconds": round(time.perf_counter() - start)}


WAVEFORM = Recipe("build_net_waveform (M5, 64 channels), delay <= 1500 samples, speed 0.85-1.15, noise 10-40 dB",
                  "waveform", build_net_waveform, epochs=30, lr=3e-3, max_delay=1500, speed=0.15, snr_db=(10, 40))

RECIPES = {  # evaluated in full (evaluate_recipe)
    "mfcc_cmvn": recognizer.MFCC,
    "mfcc_cmvn_x3": replace(recognizer.MFCC, about="mfcc_cmvn, an ensemble of 3 networks (seeds), probabilities averaged",
                            members=3),
    "waveform": WAVEFORM,
    "filterbank": replace(WAVEFORM, about="build_net_filterbank (learned log filterbank), augmented as waveform",
                          build=build_net_filterbank, epochs=25),
    "embedding": recognizer.EMBEDDING,
    "embedding+mfcc": recognizer.RECIPE,
}

RECOGNIZER = "embedding+mfcc"  # recognizer.RECIPE, the recipe tools/recognize.py trains on all 3,000 recordings


# -----------------------------------------------------------------------------
# Baseline: pocketsphinx (no training), restricted to the ten digit words

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPHINX_RATE = 16000  # Hz; the sample rate of pocketsphinx's default US-English acoustic model
SPHINX_PAD = 0.3  # seconds of silence added before and after every recording
SPHINX_GRAMMAR = ("#JSGF V1.0;\ngrammar digits;\n"
                  f"public <digit> = {' | '.join(DIGIT_WORDS)};\n")
SPHINX_CONFIG = (f"pocketsphinx {{version}}, default US-English model (en-us, cmudict-en-us.dict), no language "
                 f"model; JSGF grammar of exactly one word of {', '.join(DIGIT_WORDS)}, with the optional "
                 f"silence and fillers around it that pocketsphinx's grammar search adds (fsgusefiller); "
                 f"recordings upsampled 8 -> 16 kHz (scipy resample_poly) and padded with {SPHINX_PAD} s of "
                 f"digital silence at both ends; no hypothesis counts as an error")


def sphinx_decoder():
    """A pocketsphinx decoder that hears exactly one digit word (imported here: an optional dependency)."""
    from pocketsphinx import Decoder
    decoder = Decoder(samprate=SPHINX_RATE, lm=None, loglevel="FATAL")
    decoder.add_jsgf_string("digits", SPHINX_GRAMMAR)
    decoder.activate_search("digits")
    return decoder


def sphinx_digit(decoder, waveform: np.ndarray) -> int:
    """The digit pocketsphinx hears in an 8 kHz waveform in [-1, 1], or -1 if it hears none."""
    pad = np.zeros(round(SPHINX_PAD * SPHINX_RATE), np.float32)
    audio = np.concatenate([pad, resample_poly(waveform, SPHINX_RATE // helpers.SAMPLE_RATE, 1), pad])
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return DIGIT_WORDS.index(hypothesis.hypstr) if hypothesis and hypothesis.hypstr in DIGIT_WORDS else -1


def evaluate_sphinx(data: dict) -> dict:
    """The pocketsphinx baseline on load_fsdd's data: accuracy on every speaker's recordings (it needs no
    training, so that is its leave-one-speaker-out accuracy), on the official and the random-split test sets."""
    from importlib.metadata import version
    start, decoder = time.perf_counter(), sphinx_decoder()
    y_pred = torch.tensor([sphinx_digit(decoder, w) for w in data["recordings"]])
    y = data["y"]
    loso = {s: round(accuracy_of(y_pred[test], y[test]), 4) for s, _, test in speaker_folds(data["speakers"])}
    _, official = official_split(data["indices"])
    _, random = notebook_split(len(y))
    return {"config": SPHINX_CONFIG.format(version=version("pocketsphinx")), "loso": loso,
            "loso_mean": round(np.mean(list(loso.values())), 4), "loso_worst": min(loso.values()),
            "official": round(accuracy_of(y_pred[official], y[official]), 4),
            "random": [round(accuracy_of(y_pred[random], y[random]), 4)],
            "confusion": confusion_matrix(y, y_pred.clamp(min=0), classes=10).tolist(),
            "unrecognized": int((y_pred < 0).sum()), "seconds": round(time.perf_counter() - start)}


def speaker_independent_study(data_dir: str | os.PathLike, names: list[str]) -> dict:
    """evaluate_recipe for each named recipe in RECIPES, on its training_features of the recordings in data_dir."""
    data = load_fsdd(data_dir)
    return {name: evaluate_recipe(RECIPES[name], recognizer.training_features(RECIPES[name], data["recordings"]), data["y"],
                                  data["speakers"], data["indices"]) for name in names}


def write_results(results: dict, file: Path = RESULTS_FILE) -> None:
    """Write the results file atomically: a killed run never leaves a broken file."""
    file.parent.mkdir(exist_ok=True)
    write_atomically(file, json.dumps(results, indent=1) + "\n")


def read_results(file: Path = RESULTS_FILE) -> dict:
    """The results file, or an empty one."""
    return json.loads(file.read_text()) if file.exists() else {"recipes": {}}


def update_results(data_dir: str | os.PathLike, names: list[str], file: Path = RESULTS_FILE) -> dict:
    """Run speaker_independent_study for the named recipes one by one, merging each into `file`
    (written after every recipe, so an interrupted run keeps what it finished); returns the results."""
    results = read_results(file)
    for name in names:
        results["recipes"].update(speaker_independent_study(data_dir, [name]))
        print(f"{name}: {results['recipes'][name]['seconds']:.0f} s", flush=True)
        results["recipes"] = {n: results["recipes"][n] for n in RECIPES if n in results["recipes"]}
        results["seconds"] = sum(r["seconds"] for r in results["recipes"].values())
        write_results(results, file)
    return results


def update_baseline(data_dir: str | os.PathLike, file: Path = RESULTS_FILE) -> dict:
    """Run evaluate_sphinx on the recordings in data_dir and store it in `file` as baselines/pocketsphinx."""
    results = read_results(file)
    results.setdefault("baselines", {})["pocketsphinx"] = evaluate_sphinx(load_fsdd(data_dir))
    write_results(results, file)
    return results


def update_screening(data_dir: str | os.PathLike, name: str, speakers: list[str],
                     file: Path = RESULTS_FILE) -> dict:
    """Leave-one-speaker-out accuracy of recipe `name` (in RECIPES) on the named held-out speakers
    only, merged into `file` under screening/name."""
    recipe, data, results = RECIPES[name], load_fsdd(data_dir), read_results(file)
    x, y, start = recognizer.training_features(recipe, data["recordings"]), data["y"], time.perf_counter()
    entry = results.setdefault("screening", {}).setdefault(name, {"about": recipe.about, "loso": {}})
    for speaker, train_idx, test_idx in speaker_folds(data["speakers"]):
        if speaker in speakers:
            entry["loso"][speaker] = round(accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx), y[test_idx]), 4)
            print(f"{name}, {speaker} held out: {entry['loso'][speaker]:.3f}", flush=True)
    entry["seconds per fold"] = round((time.perf_counter() - start) / len(speakers))
    write_results(results, file)
    return results


WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5)  # the MFCC network's weights screened
SEEN_GOAL = 0.995  # the random split's accuracy (speakers the networks heard) every seed should reach


def weight_accuracies(recipe: recognizer.Combination, x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor,
                      test_idx: torch.Tensor, seed: int = 0) -> dict[float, float]:
    """recipe's two networks trained once on x[train_idx] (as fit_predict does), scored on x[test_idx] combined at
    every weight in WEIGHTS."""
    nets, x_test = recognizer.fit(recipe, x[train_idx], y[train_idx], seed).nets, recordings_only(recipe, x, test_idx)
    combined = {w: recognizer.Combined(replace(recipe, weights=(1.0, w)), list(nets)).eval() for w in WEIGHTS}
    return {w: accuracy_of(helpers.predict_proba(net, x_test, bf16=False).argmax(1), y[test_idx])
            for w, net in combined.items()}


def update_weight_screening(data_dir: str | os.PathLike, file: Path = RESULTS_FILE,
                            recipe: recognizer.Combination = recognizer.RECIPE) -> dict:
    """recipe (the recognizer's) left one speaker out and on the random split (3 seeds) at every MFCC weight in
    WEIGHTS, the weights whose random split reaches SEEN_GOAL on every seed (all if none does), and the selection
    bias of choosing among them: each held-out speaker scored at the one best on the other five folds. Merged
    into `file` under screening/'embedding+mfcc weight'."""
    data, results = load_fsdd(data_dir), read_results(file)
    x, y, start = recognizer.training_features(recipe, data["recordings"]), data["y"], time.perf_counter()
    loso = {speaker: weight_accuracies(recipe, x, y, train_idx, test_idx)
            for speaker, train_idx, test_idx in speaker_folds(data["speakers"])}
    train_idx, test_idx = notebook_split(len(y))
    random = [weight_accuracies(recipe, x, y, train_idx, test_idx, seed) for seed in RANDOM_SEEDS]
    seen = [w for w in WEIGHTS if min(r[w] for r in random) >= SEEN_GOAL] or list(WEIGHTS)
    speakers = sorted(loso)
    chosen = {s: max(seen, key=lambda w: np.mean([loso[o][w] for o in speakers if o != s])) for s in speakers}
    results.setdefault("screening", {})["embedding+mfcc weight"] = {
        "about": f"embedding+mfcc at every MFCC weight; the weights whose random split reaches {SEEN_GOAL} on every "
                 "seed; each held-out speaker at the one of them best on the other five folds",
        "loso": {s: round(loso[s][chosen[s]], 4) for s in speakers}, "weight chosen": chosen,
        "loso_mean": round(np.mean([loso[s][chosen[s]] for s in speakers]), 4),
        "loso_mean by weight": {str(w): round(float(np.mean([loso[s][w] for s in speakers])), 4) for w in WEIGHTS},
        "random by weight": {str(w): [round(r[w], 4) for r in random] for w in WEIGHTS},
        "weights reaching the random goal": seen, "seconds": round(time.perf_counter() - start)}
    write_results(results, file)
    return results


def random_split_cell(accuracies: list[float]) -> str:
    """Mean ± std of several random-split accuracies; a single one as it is."""
    if len(accuracies) == 1:
        return f"{accuracies[0]:.3f}"
    return f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}"


def speaker_independent_tables(results: dict) -> tuple[list[dict], list[dict]]:
    """Rows for the notebook from the results file: one per recipe and baseline (random split, official
    split, leave-one-speaker-out mean and worst speaker) and one per held-out speaker (every accuracy)."""
    models = {**results["recipes"], **results.get("baselines", {})}
    summary = [{"recipe": name, "random 2/3 split (3 seeds)": random_split_cell(r["random"]),
                "official split": r["official"], "leave one speaker out": r["loso_mean"],
                "worst speaker": min(r["loso"].values())}
               for name, r in models.items()]
    speakers = next(iter(models.values()))["loso"]
    per_speaker = [{"held-out speaker": s, **{name: r["loso"][s] for name, r in models.items()}} for s in speakers]
    return summary, per_speaker
