"""Say which digits (0-9) are spoken in wav files: the study's best unseen-speaker model.

    python tools/recognize.py my_seven.wav other/recordings/      # files and folders, any mix
    python tools/recognize.py --retrain my_seven.wav              # train the model afresh first

Prints one line per readable file, tab-separated: the path, the digits spoken in it and the probability
of that reading, e.g. "my_seven.wav<TAB>7<TAB>0.983" or "pin.wav<TAB>4711<TAB>0.912". A recording may
be of any length: its spoken parts are found by their loudness (study.speech_segments: silence and
steady room noise before, between and after them are skipped; pauses under 0.2 s do not split a
digit) and each part is read as one digit. The probability is the product of the digits' own
probabilities (the highest of each part's ten), the model's probability of the whole sequence if the
parts are right and independent. A folder stands for its .wav files (any case, sorted, hidden ones
skipped); its subfolders are not searched: pass them too (e.g. recordings/*/). Any sample rate, mono
or stereo, 8-32 bit integer or float wavs are read (helpers.read_wav).

The model is study.RECIPES[study.RECOGNIZER] trained on all 3,000 FSDD recordings. The first run
downloads FSDD into --data (set FSDD_SOURCE to a local archive to skip the download) and trains it,
which takes minutes (the embeddings of the recordings and their perturbed copies, kept in --models
for later trainings, then the network), and saves it as --models/recognizer.pt; later runs load it in
seconds. A model file that is unreadable, or was trained with another recipe, recipe definition, front
end or file format, is retrained with a message; so is any with --retrain.

Exit status: 0 every file was classified; 1 some files could not be read (each is reported on
stderr as "error: <file> ...", the others are still classified); 2 nothing was classified: a path
is missing or a folder holds no .wav file, or the model could not be trained (e.g. no FSDD).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers  # noqa: E402
import study  # noqa: E402

FORMAT = 1  # version of the model file's layout; bump it when that changes
MODEL_FILE = "recognizer.pt"


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
        return helpers.list_recordings(path)
    except helpers.FSDDError:
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


def model_header(name: str) -> dict:
    """What a model file must record to be reused: the file format, the recipe and its fingerprint."""
    return {"format": FORMAT, "recipe": name, "fingerprint": recipe_fingerprint(study.RECIPES[name])}


def load_model(file: Path, header: dict) -> nn.Module | None:
    """The saved network if `file` holds one trained as `header` says; None (with a message) if not."""
    if not file.exists():
        return None
    try:
        saved = torch.load(file, weights_only=True)
        stale = [key for key in header if saved.get(key) != header[key]]
        if not stale:
            net = build_model(study.RECIPES[header["recipe"]])
            net.load_state_dict(saved["state_dict"])
            return net.eval()
        problem = f"is outdated (trained with another {' and '.join(stale)} than recipe {header['recipe']!r})"
    except Exception as err:  # noqa: BLE001 - any damage (zip, pickle, keys, shapes) means: train again
        problem = f"is unreadable ({type(err).__name__}: {err})"
    print(f"{file} {problem}; training a new one.", file=sys.stderr)
    return None


def save_model(net: nn.Module, header: dict, file: Path) -> None:
    """Write the network and its header to `file` atomically (study.save_atomic)."""
    study.save_atomic({**header, "state_dict": net.state_dict()}, file)


def train_model(name: str, data_dir: Path, models_dir: Path) -> nn.Module:
    """study.fit of recipe `name` on all FSDD recordings (downloaded into data_dir if missing); the
    features of the recordings and their copies are cached in models_dir (study.training_features)."""
    recipe = study.RECIPES[name]
    files = helpers.list_recordings(helpers.download_fsdd(data_dir))
    print(f"Training the recognizer ({name}) on {len(files):,} FSDD recordings; this takes minutes once.",
          file=sys.stderr)
    x = study.training_features(recipe, [helpers.read_wav(f) for f in files], models_dir)
    y = torch.tensor([helpers.parse_file_name(f)[0] for f in files])
    return study.fit(recipe, x, y, seed=0, progress=True)


def recognizer(models_dir: Path, data_dir: Path, retrain: bool = False) -> nn.Module:
    """The network for study.RECOGNIZER: loaded from models_dir, else trained and saved there."""
    header = model_header(study.RECOGNIZER)
    file = models_dir / MODEL_FILE
    net = None if retrain else load_model(file, header)
    if net is None:
        net = train_model(study.RECOGNIZER, data_dir, models_dir)
        try:
            save_model(net, header, file)
            print(f"Saved the recognizer to {file}.", file=sys.stderr)
        except OSError as err:
            print(f"Could not save the recognizer to {file} ({err}); it serves this run only.", file=sys.stderr)
    return net


# -----------------------------------------------------------------------------
# Classifying

def classify(net: nn.Module, files: list[Path]) -> int:
    """Print path, digits and probability for every readable file; return how many could not be read."""
    readable, waveforms, failed = [], [], 0
    for file in files:
        try:
            waveforms.append(helpers.read_wav(file))
            readable.append(file)
        except helpers.RecordingError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
    if readable:
        for file, (digits, probability) in zip(readable, study.read_digits(net, study.RECIPES[study.RECOGNIZER],
                                                                           waveforms)):
            print(f"{file}\t{''.join(map(str, digits))}\t{probability:.3f}")
    return failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: paths, --retrain, --data, --models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_FOLDER", help="wav files or folders")
    parser.add_argument("--retrain", action="store_true", help="train the model afresh, even if one is saved")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="where FSDD is (downloaded on first use)")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="where the trained model is kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Classify the files on the command line; the exit status (see the module docstring)."""
    args = parse_args(argv)
    try:
        files = files_to_classify(args.paths)
        helpers.set_threads()
        net = recognizer(args.models, args.data, args.retrain)
        return 1 if classify(net, files) else 0
    except (UsageError, helpers.FSDDError) as err:  # e.g. openwakeword missing: the front end cannot run
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
