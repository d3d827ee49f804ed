"""Shared fixtures: the real FSDD archive and its extracted recordings."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers  # noqa: E402
from scripts.notebook_definitions import notebook_definitions  # noqa: E402

# the notebook's own definitions (its datasets and networks), without running its trainings
nb = SimpleNamespace(**notebook_definitions())

SHARED_ARCHIVE = ROOT.parent / "shared" / "fsdd" / f"free-spoken-digit-dataset-{helpers.FSDD_VERSION}.tar.gz"


def shrunk(recipe, **sizes):
    """recipe (a recognizer.Recipe, or a Combination's every part) with its sizes (epochs, members, copies) at
    most `sizes`: tests train it in seconds; a part is never made larger than it is."""
    import dataclasses

    import recognizer
    if isinstance(recipe, recognizer.Combination):
        return dataclasses.replace(recipe, parts=tuple(shrunk(part, **sizes) for part in recipe.parts))
    return dataclasses.replace(recipe, **{name: min(getattr(recipe, name), size) for name, size in sizes.items()})


@pytest.fixture(scope="session")
def fsdd_archive() -> Path:
    """Path to the real FSDD archive (FSDD_SOURCE or ../shared/fsdd/); skipped outside CI if absent."""
    for candidate in (os.environ.get("FSDD_SOURCE"), SHARED_ARCHIVE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    message = f"no FSDD archive: set FSDD_SOURCE to a local copy (looked for {SHARED_ARCHIVE})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def recordings(fsdd_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3,000 real recordings, extracted once per test session."""
    return helpers.download_fsdd(tmp_path_factory.mktemp("fsdd"), source=fsdd_archive)


@pytest.fixture(scope="session")
def held_out_model(recordings: Path):
    """(recipe, network, held-out speaker): recognizer.RECIPE without copies, a few epochs on takes
    0-9 of five speakers (500 recordings; seconds), theo held out."""
    import torch

    import recognizer
    recipe = shrunk(recognizer.RECIPE, copies=0, epochs=10, members=1)
    files = [f for f in sorted(recordings.glob("*.wav"))
             if helpers.parse_file_name(f)[1] != "theo" and helpers.parse_file_name(f)[2] < 10]
    x = recognizer.recording_features(recipe, [helpers.read_wav(f) for f in files])
    y = torch.tensor([helpers.parse_file_name(f)[0] for f in files])
    return recipe, recognizer.fit(recipe, x, y), "theo"
