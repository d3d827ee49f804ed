"""Download, loading and the given receptive-field helpers on real data."""
from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch
from scipy.io import wavfile

import helpers
from conftest import nb


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fsdd.tar.gz"


# -----------------------------------------------------------------------------
# download_fsdd

def test_download_from_file_then_idempotent_without_network(fsdd_archive, tmp_path, monkeypatch):
    first = helpers.download_fsdd(tmp_path, source=fsdd_archive)
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    monkeypatch.setenv("FSDD_SOURCE", closed_port_url())  # any network access would fail
    assert helpers.download_fsdd(tmp_path) == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before


def test_env_var_source_is_used(fsdd_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("FSDD_SOURCE", str(fsdd_archive))
    assert len(list(helpers.download_fsdd(tmp_path).glob("*.wav"))) == 3000


# -----------------------------------------------------------------------------
# load_waveform and SpokenDigits on real wav bytes

def test_load_waveform_real_file(recordings):
    file = recordings / "3_theo_7.wav"
    samplerate, raw = wavfile.read(file)
    assert samplerate == helpers.SAMPLE_RATE and raw.dtype == np.int16
    waveform = nb.load_waveform(file)
    assert waveform.shape == (6000,) and waveform.dtype == np.float32
    assert nb.load_waveform(file, size=100).shape == (100,)


def test_screening_recordings_real_files(recordings):
    files = helpers.list_recordings(recordings)
    picks = [files.index(recordings / name) for name in ("3_theo_7.wav", "0_george_0.wav")]
    raw, labels, rms = helpers.screening_recordings(files, picks, size=6000)
    assert raw.shape == (2, 6000) and labels.tolist() == [3, 0]
    whole = helpers.read_wav(recordings / "3_theo_7.wav")  # int16 / 32768, its own length
    n = min(len(whole), 6000)
    assert np.array_equal(raw[0, :n], whole[:n]) and not raw[0, n:].any()
    assert rms[0] == pytest.approx(np.sqrt(np.mean(whole ** 2))) and 0 < rms[1] < 1


def test_spoken_digits_real_data(recordings):
    data = nb.SpokenDigits(recordings)
    assert len(data) == 3000
    assert data.x.shape == (3000, 1, 6000) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.int64 and sorted(data.y.unique().tolist()) == list(range(10))
    assert torch.bincount(data.y).tolist() == [300] * 10
    assert sorted(set(data.speakers)) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert data.files == sorted(data.files)  # deterministic order
    for i in (0, 1234, 2999):
        digit, speaker, index = helpers.parse_file_name(data.files[i])
        assert (data.y[i].item(), data.speakers[i], data.takes[i]) == (digit, speaker, index)
        x, y = data[i]
        assert x.shape == (1, 6000) and y == digit


def test_spoken_digits_loads_only_given_folder(recordings, tmp_path):
    for name in ("0_george_0.wav", "9_theo_49.wav"):
        shutil.copy(recordings / name, tmp_path / name)
    data = nb.SpokenDigits(tmp_path)
    assert data.y.tolist() == [0, 9] and data.speakers == ["george", "theo"]


# -----------------------------------------------------------------------------
# the assignment's receptive-field helpers on known cases

@pytest.mark.parametrize("kernel, output", [(3, 13), (5, 11), (7, 9)])
def test_single_convolution_field_and_output(kernel, output):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, kernel_size=kernel))
    fields = helpers.compute_receptive_field(net, input_size=(15, 15))
    assert helpers.receptive_field_size(net) == kernel * kernel
    assert fields[-1].shape[2:] == (output, output)


def test_two_3x3_convolutions_see_5x5():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Conv2d(1, 1, 3, padding=1))
    field = helpers.compute_receptive_field(net)[0][0, 0]
    rows, cols = torch.nonzero(field, as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (5, 9, 5, 9)
    assert helpers.parameter_count(net) == 2 * (9 + 1)


def test_print_parameter_count(capsys):
    helpers.print_parameter_count(torch.nn.Sequential(torch.nn.Conv2d(2, 3, kernel_size=5)))
    assert capsys.readouterr().out == "153 parameters\n"
