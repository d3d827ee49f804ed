"""The digit recognizer: study.RECIPES[study.RECOGNIZER] trained on all FSDD recordings, kept in a model file,
reading the digits spoken in wav files of any length. tools/recognize.py is its command line.

Its input goes down: the paths to files_to_classify and the files to read_files here, their samples from
audio.read_wav, their digits from study.read_digits (spoken parts, features, the network).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import audio
import helpers
import study

FORMAT = 2  # version of the model file's layout; bump it when that changes
MODEL_FILE = "recognizer.pt"
RECIPE = study.RECIPES[study.RECOGNIZER]  # what tools/recognize.py trains (tests pass smaller replace()s of it)


class UsageError(Exception):
    """A path on the command line that cannot be classified at all (the message says why)."""


# -----------------------------------------------------------------------------
# Files to classify

def wav_files(path: Path) -> list[Path]:
    """The path itself if it is a file; the .wav files directly inside it if it is a folder."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise UsageError(f"{path} does not exist. Pass wav files or folders that hold them.")
    try:
        return audio.list_recordings(path)
    except audio.FSDDError:
        raise UsageError(f"{path} holds no .wav files (subfolders are not searched). Pass wav files "
                         "or the folders that hold them.") from None


def files_to_classify(paths: list[Path]) -> list[Path]:
    """Every file that `paths` stand for, in order; UsageError listing every path that stands for none."""
    files, problems = [], []
    for path in paths:
        try:
            files += wav_files(path)
        except UsageError as err:
            problems.append(str(err))
    if problems:
        raise UsageError("\n".join(problems))
    return files


# -----------------------------------------------------------------------------
# The model: trained once, saved, loaded

def recipe_fingerprint(recipe: study.Recipe) -> str:
    """sha256 of what the model depends on: the recipe's fields (functions by their source), the
    network's layers and the source of the recipe's front end (study.front_end_source)."""
    fields = [f"{field.name}={_describe(getattr(recipe, field.name))}" for field in dataclasses.fields(recipe)]
    text = "\n".join([*fields, repr(build_model(recipe)), study.front_end_source(recipe)])
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(value: object) -> str:
    """A field value as text that is the same in every process (functions by their source)."""
    return inspect.getsource(value) if inspect.isfunction(value) else repr(value)


def build_model(recipe: study.Recipe) -> nn.Module:
    """An untrained network of the shape study.fit returns for recipe (an Ensemble if it has members)."""
    if recipe.members == 1:
        return recipe.build()
    return study.Ensemble([recipe.build() for _ in range(recipe.members)])


def model_header(recipe: study.Recipe) -> dict:
    """What a model file must record to be reused: the file format and the recipe's fingerprint."""
    return {"format": FORMAT, "fingerprint": recipe_fingerprint(recipe)}


def load_model(file: Path, recipe: study.Recipe) -> nn.Module | None:
    """The saved network if `file` holds one trained with `recipe`; None (with a message) if not."""
    if not file.exists():
        return None
    try:
        saved, header = torch.load(file, weights_only=True), model_header(recipe)
        stale = [key for key in header if saved.get(key) != header[key]]
        if not stale:
            net = build_model(recipe)
            net.load_state_dict(saved["state_dict"])
            return net.eval()
        problem = f"is outdated (another {' and '.join(stale)}: trained with another file format, recipe or front end)"
    except Exception as err:  # noqa: BLE001 - any damage (zip, pickle, keys, shapes) means: train again
        problem = f"is unreadable ({type(err).__name__}: {err})"
    print(f"{file} {problem}; training a new one.", file=sys.stderr)
    return None


def save_model(net: nn.Module, recipe: study.Recipe, file: Path) -> None:
    """Write the network and its header (model_header) to `file` atomically (study.save_atomic)."""
    study.save_atomic({**model_header(recipe), "state_dict": net.state_dict()}, file)


def train_model(recipe: study.Recipe, data_dir: Path, models_dir: Path) -> nn.Module:
    """study.fit of `recipe` on all FSDD recordings (downloaded into data_dir if missing); the
    features of the recordings and their copies are cached in models_dir (study.training_features)."""
    files = audio.list_recordings(helpers.download_fsdd(data_dir))
    print(f"Training the recognizer on {len(files):,} FSDD recordings; this takes minutes once.",
          file=sys.stderr)
    x = study.training_features(recipe, [audio.read_wav(f) for f in files], models_dir)
    y = torch.tensor([audio.parse_file_name(f)[0] for f in files])
    return study.fit(recipe, x, y, seed=0, progress=True)


def recognizer(models_dir: Path, data_dir: Path, recipe: study.Recipe, retrain: bool = False) -> nn.Module:
    """The network of `recipe`: loaded from models_dir, else trained and saved there."""
    file = models_dir / MODEL_FILE
    net = None if retrain else load_model(file, recipe)
    if net is None:
        net = train_model(recipe, data_dir, models_dir)
        try:
            save_model(net, recipe, file)
            print(f"Saved the recognizer to {file}.", file=sys.stderr)
        except OSError as err:
            print(f"Could not save the recognizer to {file} ({err}); it serves this run only.", file=sys.stderr)
    return net


# -----------------------------------------------------------------------------
# Reading the digits of wav files

@dataclass
class Reading:
    """What one file says: its digits and their probability, or why it could not be read."""
    file: Path
    digits: str = ""
    probability: float = 0.0
    error: audio.RecordingError | None = None


def read_files(net: nn.Module, files: list[Path], recipe: study.Recipe) -> list[Reading]:
    """The reading of every file, in order: the readable ones classified together (study.read_digits)."""
    readings, waveforms = [], []
    for file in files:
        try:
            waveforms.append(audio.read_wav(file))
            readings.append(Reading(file))
        except audio.RecordingError as err:
            readings.append(Reading(file, error=err))
    read = iter(study.read_digits(net, recipe, waveforms) if waveforms else [])
    for reading in readings:
        if reading.error is None:
            digits, reading.probability = next(read)
            reading.digits = "".join(map(str, digits))
    return readings
