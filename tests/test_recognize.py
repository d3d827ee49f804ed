"""tools/recognize.py, recognizer.py and reader.py on real recordings.

The command line's handling (files, folders, errors, model files) is tested with a one-epoch recipe of a
20,000-parameter network on a 20-recording stand-in for FSDD (training well under a second); the real
recipe's path (front end with perturbed copies, ensemble, helpers.train, export, save, load, read) is tested
with the recipe's own code at fewer epochs, members and copies, and, slow, end to end in its own process.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly
from torch import nn

import audio
import helpers
import reader
import recognizer
import study
from conftest import ROOT, shrunk

spec = importlib.util.spec_from_file_location("recognize", ROOT / "tools" / "recognize.py")
recognize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recognize)

TOP = f"free-spoken-digit-dataset-{helpers.FSDD_VERSION}"


def build_tiny_net() -> nn.Sequential:
    """A network for 13 MFCCs x 74 frames small enough to train in milliseconds, of layers reader.py runs."""
    return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(13 * 74), nn.Linear(13 * 74, 16), nn.ReLU(), nn.Linear(16, 10))


TINY = recognizer.Recipe("tiny test network", "mfcc", build_tiny_net, epochs=1, lr=1e-2, cmvn=True)


@pytest.fixture
def fit_calls(monkeypatch) -> list[str]:
    """The command line trains TINY; the list records each recognizer.fit call's recipe."""
    monkeypatch.setattr(recognizer, "RECIPE", TINY)
    calls, fit = [], recognizer.fit

    def counted_fit(recipe, x, y, **options):
        calls.append(recipe.about)
        return fit(recipe, x, y, **options)

    monkeypatch.setattr(recognizer, "fit", counted_fit)
    return calls


@pytest.fixture
def data_dir(tmp_path, recordings, monkeypatch) -> Path:
    """A complete FSDD download of 20 real recordings (2 per digit), as download_fsdd leaves it."""
    folder = tmp_path / "data" / TOP / "recordings"
    folder.mkdir(parents=True)
    for digit in range(10):
        for name in (f"{digit}_jackson_0.wav", f"{digit}_theo_0.wav"):
            shutil.copy(recordings / name, folder / name)
    (folder / ".complete").write_text("test\n")
    monkeypatch.setattr(helpers, "FSDD_NUM_FILES", 20)
    return tmp_path / "data"


@pytest.fixture
def user_folder(tmp_path, recordings) -> Path:
    """Three recordings as a user might have them: other names, one as 16 kHz stereo float."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(recordings / "3_nicolas_7.wav", folder / "a.wav")
    shutil.copy(recordings / "8_yweweler_2.wav", folder / "B.WAV")
    mono = helpers.read_wav(recordings / "5_lucas_9.wav")
    stereo = np.stack([np.repeat(mono, 2)] * 2, axis=1).astype(np.float32)
    wavfile.write(folder / "c.wav", 16000, stereo)
    (folder / "notes.txt").write_text("not audio")
    return folder


def run(capsys, *args: str | Path) -> tuple[int, list[str], str]:
    """recognize.main in this process: (exit status, stdout lines, stderr)."""
    status = recognize.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def assert_classified(lines: list[str], files: list[Path]) -> None:
    """One line per file, in order: path, a digit 0-9 and a probability in [0, 1]."""
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in files]
    for line in lines:
        _, digit, probability = line.split("\t")
        assert digit in list("0123456789") and 0 <= float(probability) <= 1


def test_first_run_trains_and_saves_then_reruns_load(tmp_path, capsys, fit_calls, data_dir, user_folder):
    models = tmp_path / "models"
    status, lines, err = run(capsys, user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and fit_calls == ["tiny test network"]
    assert "Training the recognizer on 20 FSDD recordings" in err and "Saved the recognizer" in err
    assert sorted(p.name for p in models.iterdir()) == ["recognizer.npz"]  # no temp file left
    assert_classified(lines, [user_folder / "B.WAV", user_folder / "a.wav", user_folder / "c.wav"])

    status, again, err = run(capsys, user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and fit_calls == ["tiny test network"] and err == ""  # loaded, not trained
    assert again == lines


def test_ensemble_recipe_saves_and_loads(tmp_path, capsys, fit_calls, data_dir, user_folder, monkeypatch):
    monkeypatch.setattr(recognizer, "RECIPE", dataclasses.replace(TINY, members=2))
    models = tmp_path / "models"
    first = run(capsys, user_folder, "--data", data_dir, "--models", models)
    second = run(capsys, user_folder, "--data", data_dir, "--models", models)
    assert first[0] == second[0] == 0 and len(fit_calls) == 1 and second[2] == ""
    assert first[1] == second[1] and len(first[1]) == 3
    assert len(reader.load_model(models / "recognizer.npz")[0].networks[0].members) == 2


def test_files_and_folders_mixed_in_order(tmp_path, capsys, fit_calls, data_dir, user_folder):
    files = [user_folder / "c.wav", user_folder / "notes.txt"]
    status, lines, err = run(capsys, *files, user_folder, "--data", data_dir, "--models", tmp_path / "m")
    assert status == 1 and "notes.txt could not be decoded as audio" in err  # given by name: tried and reported
    assert_classified(lines, [files[0], user_folder / "B.WAV", user_folder / "a.wav", user_folder / "c.wav"])


def test_real_recipe_trains_saves_loads_and_reads(tmp_path, capsys, data_dir, user_folder):
    """The recognizer's recipe with nothing replaced, only smaller (fields of its parts): the embedding front
    end with perturbed copies, an ensemble, and the MFCC network, fitted through helpers.train, saved, loaded,
    read."""
    recipe = shrunk(recognizer.RECIPE, epochs=2, members=2, copies=1)
    models = tmp_path / "models"
    model = recognizer.recognizer(models, data_dir, recipe)
    assert "Training the recognizer on 20 FSDD recordings" in capsys.readouterr().err
    assert sorted(p.suffix for p in models.iterdir()) == [".npz", ".pt"]  # the model and the cached features
    files = [user_folder / "a.wav", user_folder / "c.wav"]
    readings = reader.read_files(model, files)
    loaded = recognizer.recognizer(models, data_dir, recipe)
    assert capsys.readouterr().err == ""  # loaded, not trained
    again = reader.read_files(loaded, files)
    assert [(r.digits, r.probability) for r in again] == [(r.digits, r.probability) for r in readings]
    assert all(len(r.digits) == 1 and 0.1 <= r.probability <= 1 for r in readings)


@pytest.mark.parametrize("damage", ["random bytes", "empty", "cut in half"])
def test_corrupt_model_file_is_retrained(tmp_path, capsys, fit_calls, data_dir, user_folder, damage):
    models = tmp_path / "models"
    run(capsys, user_folder, "--data", data_dir, "--models", models)
    model = models / "recognizer.npz"
    model.write_bytes({"random bytes": np.random.default_rng(0).bytes(3000), "empty": b"",
                       "cut in half": model.read_bytes()[: model.stat().st_size // 2]}[damage])
    status, lines, err = run(capsys, user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and len(fit_calls) == 2 and len(lines) == 3
    assert f"{model} is unreadable" in err and "training a new one" in err
    assert run(capsys, user_folder, "--data", data_dir, "--models", models)[2] == ""  # the new one loads


def save_tiny(file: Path, **header) -> None:
    """An untrained TINY model saved with recognizer.model_header(TINY), its fields replaced by `header`'s."""
    reader.save_model(recognizer.export(build_tiny_net(), TINY), {**recognizer.model_header(TINY), **header}, file)


@pytest.mark.parametrize("changed", [dict(fingerprint="0" * 64, source="0" * 64), dict(format=0)])
def test_outdated_model_file_is_retrained(tmp_path, capsys, fit_calls, data_dir, user_folder, changed):
    models = tmp_path / "models"
    save_tiny(models / "recognizer.npz", **changed)
    status, lines, err = run(capsys, user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and len(fit_calls) == 1 and len(lines) == 3
    key = "fingerprint" if "fingerprint" in changed else "format"
    assert (f"is outdated (another {key}: trained with another file format, recipe or front end); "
            "training a new one") in err


def test_model_checked_against_other_code_is_kept_if_its_recipe_is_the_same(tmp_path, capsys, fit_calls, data_dir,
                                                                             user_folder):
    """Code changed elsewhere (another source digest), same recipe fingerprint: loaded without training, and its
    header brought up to this code, so the next run reads it without torch."""
    file = tmp_path / "models" / "recognizer.npz"
    save_tiny(file, source="0" * 64)
    assert reader.current_model(file) is None
    status, lines, err = run(capsys, user_folder, "--data", data_dir, "--models", file.parent)
    assert status == 0 and fit_calls == [] and err == "" and len(lines) == 3
    assert reader.current_model(file) is not None


def test_weights_of_another_shape_are_refused_and_retrained(tmp_path, capsys, fit_calls, data_dir, user_folder):
    file = tmp_path / "models" / "recognizer.npz"
    with pytest.raises(ValueError, match="not those of the recipe's network"):
        recognizer.save_model(nn.Sequential(nn.Flatten(), nn.Linear(3, 3)), TINY, file)
    reader.save_model(recognizer.export(nn.Sequential(nn.Flatten(), nn.Linear(3, 3)), TINY),
                      {**recognizer.model_header(TINY), "source": "0" * 64}, file)  # as if written by other code
    status, _, err = run(capsys, user_folder, "--data", data_dir, "--models", file.parent)
    assert status == 0 and len(fit_calls) == 1 and "is unreadable (ValueError: its layers" in err


def test_exported_model_reads_as_the_torch_network():
    """reader.Model's numpy layers give the probabilities helpers.predict_proba gives for the trained network
    (an ensemble of the recipe's head, with batch-norm statistics that are not the defaults)."""
    torch.manual_seed(0)
    net = recognizer.build_model(dataclasses.replace(recognizer.EMBEDDING, members=3))
    for member in net.members:
        member[0].running_mean.normal_()
        member[0].running_var.uniform_(0.5, 2)
        member[0].weight.data.normal_()
    net.eval()
    x = torch.randn(50, 288)
    numpy = recognizer.export(net, recognizer.EMBEDDING).networks[0].probabilities(x.numpy())
    np.testing.assert_allclose(numpy, helpers.predict_proba(net, x, bf16=False).numpy(), atol=1e-6)
    assert (numpy.argmax(1) == helpers.predict_proba(net, x, bf16=False).argmax(1).numpy()).all()


def test_exported_combination_reads_as_the_torch_networks(recordings):
    """The recognizer's Combination (the embedding head and the convolutional MFCC network, log-probabilities
    weighted) read from waveforms by reader.Model gives what torch gives for the concatenated input."""
    torch.manual_seed(0)
    net = recognizer.build_model(recognizer.RECIPE)
    for layer in net.modules():
        if isinstance(layer, nn.BatchNorm1d):  # statistics that are not the defaults
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.5, 2)
    net.eval()
    waveforms = [helpers.read_wav(f) for f in sorted(recordings.glob("*_lucas_1.wav"))]
    numpy = recognizer.export(net, recognizer.RECIPE).probabilities(waveforms)
    torch_p = helpers.predict_proba(net, recognizer.recording_features(recognizer.RECIPE, waveforms), bf16=False)
    np.testing.assert_allclose(numpy, torch_p.numpy(), atol=1e-5)
    assert numpy.shape == (10, 10) and not np.allclose(numpy, numpy[:1])


def test_a_network_reader_cannot_run_is_refused_by_name():
    with pytest.raises(ValueError, match="no numpy version of Conv1d"):
        recognizer.export(nn.Sequential(nn.Conv1d(13, 8, 3), nn.Flatten()), TINY)


def test_fingerprint_follows_the_recipe_definition(fit_calls):
    tiny = TINY
    fingerprints = {recognizer.recipe_fingerprint(r) for r in [
        tiny, recognizer.Recipe("tiny test network", "mfcc", build_tiny_net, epochs=1, lr=1e-2, cmvn=True)]}
    assert len(fingerprints) == 1  # equal definitions, equal fingerprints
    for changed in [dict(epochs=2), dict(lr=1e-3), dict(masks=(2, 9)), dict(build=recognizer.build_net_mfcc_gap)]:
        assert recognizer.recipe_fingerprint(dataclasses.replace(tiny, **changed)) not in fingerprints, changed


def test_fingerprint_follows_the_front_ends_settings(monkeypatch):
    """A setting the front end reads (here the embedding's window step) is part of the fingerprint, so a
    model or feature cache computed with another value is not reused."""
    before = recognizer.recipe_fingerprint(recognizer.EMBEDDING)
    monkeypatch.setattr(reader, "EMBEDDING_STEP", reader.EMBEDDING_STEP + 1)
    assert recognizer.recipe_fingerprint(recognizer.EMBEDDING) != before
    assert f"EMBEDDING_STEP = {reader.EMBEDDING_STEP}" in recognizer.front_end_source(recognizer.EMBEDDING)


def test_retrain_forces_training(tmp_path, capsys, fit_calls, data_dir, user_folder):
    models = tmp_path / "models"
    run(capsys, user_folder, "--data", data_dir, "--models", models)
    status, lines, err = run(capsys, "--retrain", user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and len(fit_calls) == 2 and "Training the recognizer" in err and len(lines) == 3


def test_failed_save_keeps_the_old_model(tmp_path, capsys, fit_calls, data_dir, user_folder, monkeypatch):
    models = tmp_path / "models"
    run(capsys, user_folder, "--data", data_dir, "--models", models)
    before = (models / "recognizer.npz").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reader, "write_atomically", full_disk)
    status, lines, err = run(capsys, "--retrain", user_folder, "--data", data_dir, "--models", models)
    assert status == 0 and len(lines) == 3 and "No space left on device); it serves this run only" in err
    assert (models / "recognizer.npz").read_bytes() == before and os.listdir(models) == ["recognizer.npz"]


@pytest.mark.parametrize("case", ["missing file", "missing folder", "folder without wavs"])
def test_path_that_stands_for_no_wav_exits_2_before_training(tmp_path, capsys, fit_calls, data_dir,
                                                              user_folder, case):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "0_a_0.wav").write_bytes(b"")  # subfolders are not searched
    (empty / "README.txt").write_text("x")
    path, message = {"missing file": (tmp_path / "gone.wav", "gone.wav does not exist"),
                     "missing folder": (tmp_path / "gone", "gone does not exist"),
                     "folder without wavs": (empty, "empty holds no recordings (.wav .flac")}[case]
    status, lines, err = run(capsys, user_folder, path, "--data", data_dir, "--models", tmp_path / "m")
    assert status == 2 and lines == [] and fit_calls == [] and f"error: {tmp_path}" in err and message in err


def test_bad_wav_among_good_ones_is_reported_and_the_rest_classified(tmp_path, capsys, fit_calls, data_dir,
                                                                     user_folder):
    (user_folder / "broken.wav").write_bytes((user_folder / "a.wav").read_bytes()[:30])
    status, lines, err = run(capsys, user_folder, "--data", data_dir, "--models", tmp_path / "m")
    assert status == 1
    assert f"error: {user_folder / 'broken.wav'} is truncated" in err
    assert_classified(lines, [user_folder / "B.WAV", user_folder / "a.wav", user_folder / "c.wav"])


def test_no_training_data_exits_2_with_the_fix(tmp_path, capsys, fit_calls, user_folder, monkeypatch):
    monkeypatch.setenv("FSDD_SOURCE", str(tmp_path / "nowhere.tar.gz"))
    status, lines, err = run(capsys, user_folder, "--data", tmp_path / "data", "--models", tmp_path / "m")
    assert status == 2 and lines == [] and "nowhere.tar.gz does not exist. Set FSDD_SOURCE" in err


@pytest.mark.slow
def test_command_line_first_run_trains_then_loads(tmp_path, recordings):
    """A newcomer's first run: tools/recognize.py in its own process, the real recipe, an empty models folder,
    the 3,000 real recordings; then a second run loads the saved model and reads the same."""
    models, wavs = tmp_path / "models", [recordings / "7_george_3.wav", recordings / "2_theo_40.wav"]
    command = [sys.executable, str(ROOT / "tools" / "recognize.py"), "--models", str(models),
               "--data", str(recordings.parents[1]), *map(str, wavs)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Saved the recognizer" in first.stderr and (models / "recognizer.npz").is_file()
    assert [line.split("\t")[:2] for line in first.stdout.splitlines()] == [[str(wavs[0]), "7"], [str(wavs[1]), "2"]]
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and second.stderr == "" and second.stdout == first.stdout


@pytest.mark.slow
def test_command_line_with_a_saved_model(tmp_path, user_folder, recordings):
    """The CLI in its own process, with an (untrained) model of the real recipe saved beforehand."""
    models = tmp_path / "models"
    recognizer.save_model(recognizer.build_model(recognizer.RECIPE), recognizer.RECIPE, models / "recognizer.npz")
    command = [sys.executable, str(ROOT / "tools" / "recognize.py"), "--models", str(models),
               "--data", str(tmp_path / "no-data")]
    env = dict(os.environ)
    done = subprocess.run([*command, user_folder, recordings / "0_jackson_0.wav"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # loaded: no training, no download
    assert_classified(done.stdout.splitlines(), [user_folder / "B.WAV", user_folder / "a.wav",
                                                 user_folder / "c.wav", recordings / "0_jackson_0.wav"])
    done = subprocess.run([*command, tmp_path / "gone.wav"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == "" and "gone.wav does not exist" in done.stderr


def test_fingerprints_are_the_same_in_a_fresh_process():
    """Else every run would retrain (e.g. a recipe field whose repr holds a memory address)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import recognizer, study\n"
              "print({name: recognizer.recipe_fingerprint(r) for name, r in study.RECIPES.items()})")
    done = subprocess.run([sys.executable, "-c", script, str(ROOT)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str({name: recognizer.recipe_fingerprint(r) for name, r in study.RECIPES.items()})


def test_reading_with_a_saved_model_never_imports_torch(tmp_path, user_folder):
    """A later run reads the saved model with numpy (in about a second, in a few hundred MB): torch, d2l,
    torchvision, pandas, helpers and the study stay unloaded (the study imports the recognizer, not the other
    way round)."""
    models = tmp_path / "models"
    recognizer.save_model(build_tiny_net().eval(), TINY, models / "recognizer.npz")
    script = ("import importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('recognize', sys.argv[1])\n"
              "recognize = importlib.util.module_from_spec(spec); spec.loader.exec_module(recognize)\n"
              "status = recognize.main(sys.argv[2:])\n"
              "print(status, sorted(m for m in ('torch', 'd2l', 'torchvision', 'pandas', 'helpers', 'recognizer', "
              "'study') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script, str(ROOT / "tools" / "recognize.py"), "--models",
                           str(models), str(user_folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    *lines, last = done.stdout.splitlines()
    assert last == "0 []" and len(lines) == 3


def write_wav(file: Path, waveform: np.ndarray, rate: int, channels: int) -> Path:
    """An 8 kHz waveform as a 16-bit wav at another sample rate and channel count."""
    resampled = resample_poly(waveform, rate // 100, 80)
    wavfile.write(file, rate, (np.stack([resampled] * channels, 1) * 32000).astype(np.int16))
    return file


@pytest.mark.slow
def test_long_noisy_recordings_and_digit_sequences_of_a_held_out_speaker(tmp_path, capsys, recordings,
                                                                          held_out_model, monkeypatch):
    recipe, net, speaker = held_out_model
    monkeypatch.setattr(recognizer, "RECIPE", recipe)
    models = tmp_path / "models"
    recognizer.save_model(net, recipe, models / "recognizer.npz")
    rng = np.random.default_rng(3)
    clip = lambda d: helpers.read_wav(recordings / f"{d}_{speaker}_{rng.integers(10, 50)}.wav")  # noqa: E731
    singles, sequences = [2, 5, 8], [[4, 7, 1, 1], [0, 3, 9, 6]]
    files = [write_wav(tmp_path / f"one_{d}.wav", study.assemble([clip(d)], rng, lead=(3, 5)), 44100, 2)
             for d in singles]
    files += [write_wav(tmp_path / f"pin_{''.join(map(str, s))}.wav", study.assemble([clip(d) for d in s], rng),
                        16000, 1) for s in sequences]
    status, lines, err = run(capsys, *files, "--models", models, "--data", tmp_path / "no-data")
    assert status == 0 and err == "" and [line.split("\t")[0] for line in lines] == [str(f) for f in files]
    read = [line.split("\t")[1] for line in lines]
    assert all(len(digits) == 1 for digits in read[:3]) and all(len(digits) == 4 for digits in read[3:]), read
    truth = "".join(map(str, singles)) + "".join("".join(map(str, s)) for s in sequences)
    assert sum(a == b for a, b in zip("".join(read), truth)) >= 9, read  # 11 digits
    assert all(0 < float(line.split("\t")[2]) <= 1 for line in lines)


@pytest.mark.slow
def test_every_format_gives_the_digits_of_the_wav(tmp_path, capsys, recordings, held_out_model, monkeypatch):
    """The same recordings as wav, flac, ogg/Opus, mp3, m4a/AAC and webm (made with PyAV): the same digits."""
    from test_audio_formats import FORMATS, encode
    recipe, net, speaker = held_out_model
    monkeypatch.setattr(recognizer, "RECIPE", recipe)
    models = tmp_path / "models"
    recognizer.save_model(net, recipe, models / "recognizer.npz")
    takes = [f"{digit}_{speaker}_{take}" for digit, take in [(0, 11), (4, 23), (6, 35), (9, 47)]]
    files = [recordings / f"{take}.wav" for take in takes]
    for take in takes:
        waveform = helpers.read_wav(recordings / f"{take}.wav")
        files += [encode(tmp_path / f"{take}-{name}", waveform, *spec) for name, *spec in FORMATS]
    status, lines, err = run(capsys, *files, "--models", models, "--data", tmp_path / "no-data")
    assert status == 0 and err == "" and len(lines) == len(files), err
    digits = {line.split("\t")[0]: line.split("\t")[1] for line in lines}
    for take in takes:
        wav = digits[str(recordings / f"{take}.wav")]
        assert [digits[str(tmp_path / f"{take}-{name}")] for name, *_ in FORMATS] == [wav] * len(FORMATS), take


def test_help_tells_formats_output_and_exit_status(capsys):
    with pytest.raises(SystemExit) as done:
        recognize.parse_args(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for promise in ["flac, ogg/Opus, mp3, m4a/AAC", "webm", "Output: one line per readable file",
                    "Exit status: 0", "1 some files could not be read or decoded", "2 nothing was",
                    " ".join(audio.AUDIO_SUFFIXES)]:  # the suffixes a folder is searched for, all of them
        assert promise in " ".join(out.split()), promise
