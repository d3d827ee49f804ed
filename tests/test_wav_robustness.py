"""read_wav on every malformed wav a user may hand the recognizer (issue 12).

Each case must give a helpers.RecordingError naming the file and its fix, never a raw struct.error,
IndexError, MemoryError or a crash. A cut anywhere (header or data) is "truncated", like a file
that ends before the length in its header always was; files whose header claims gigabytes are
refused without allocating them. Good formats are tested in tests/test_data_robustness.py.
"""
from __future__ import annotations

import struct
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import audio
import helpers
from helpers import RecordingError

FIX = "Replace it with a good copy"
RANDOM_CUTS = sorted(np.random.default_rng(12).integers(64, 10340, 30).tolist())  # 10340: 0_jackson_0.wav


@pytest.fixture(scope="module")
def wav_bytes(recordings: Path) -> bytes:
    """A real FSDD recording (16-bit mono 8 kHz, 44-byte header) as bytes."""
    return (recordings / "0_jackson_0.wav").read_bytes()


def _write(tmp_path: Path, content: bytes, name: str = "7_user_0.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _assert_named_error(file: Path, what: str) -> None:
    """read_wav(file) raises RecordingError naming the file, saying `what` and how to fix it."""
    with pytest.raises(RecordingError) as err:
        helpers.read_wav(file)
    message = str(err.value)
    assert str(file) in message and what in message, message
    assert FIX in message or "Delete" in message or "Cut it" in message, message


def _patched(content: bytes, patches: list[tuple[int, str, int]]) -> bytes:
    """content with struct.pack(fmt, value) written at offset for each (offset, fmt, value)."""
    data = bytearray(content)
    for offset, fmt, value in patches:
        struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def test_the_real_recording_has_the_layout_these_tests_patch(tmp_path, wav_bytes):
    assert len(wav_bytes) == 10340 and wav_bytes[:4] == b"RIFF" and wav_bytes[36:40] == b"data"
    assert helpers.read_wav(_write(tmp_path, wav_bytes)).shape == (5148,)


@pytest.mark.parametrize("offset", range(1, 4))
def test_cut_inside_the_signature_is_not_a_wav(tmp_path, wav_bytes, offset):
    _assert_named_error(_write(tmp_path, wav_bytes[:offset]), "not a readable wav file")


@pytest.mark.parametrize("offset", [*range(4, 64), *RANDOM_CUTS, 10339])
def test_cut_anywhere_after_the_signature_is_truncated(tmp_path, wav_bytes, offset):
    _assert_named_error(_write(tmp_path, wav_bytes[:offset]), "is truncated")


@pytest.mark.parametrize("name, content, what", [
    ("empty", b"", "it is empty"),
    ("text renamed .wav", b"Shopping list:\n- milk\n- eggs\n" * 10, "File format b'Shop' not understood"),
    ("random bytes", np.random.default_rng(0).bytes(5000), "not a readable wav file"),
    ("RIFF but not WAVE", b"RIFF\x24\x00\x00\x00AVI " + bytes(40), "RIFF form type is b'AVI '"),
])
def test_not_a_wav_at_all(tmp_path, name, content, what):
    _assert_named_error(_write(tmp_path, content), what)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_after_a_riff_header(tmp_path, seed):
    noise = np.random.default_rng(seed).bytes(int(np.random.default_rng(seed).integers(0, 3000)))
    file = _write(tmp_path, b"RIFF" + struct.pack("<I", len(noise) + 4) + b"WAVE" + noise)
    with pytest.raises(RecordingError, match=str(file)):
        helpers.read_wav(file)


HUGE_CLAIMS = {  # (offset, format, value) patched into the real recording
    "data chunk of 4 GiB": [(40, "<I", 0xFFFFFFF0)],
    "RIFF and data chunk of 4 GiB": [(4, "<I", 0xFFFFFFF0), (40, "<I", 0xFFFFFFF0)],
    "fmt chunk of 4 GiB": [(16, "<I", 0xFFFFFFF0)],
}


@pytest.mark.parametrize("case", HUGE_CLAIMS)
def test_header_claiming_gigabytes_allocates_nothing(tmp_path, wav_bytes, case):
    content = _patched(wav_bytes, HUGE_CLAIMS[case])
    tracemalloc.start()
    try:
        _assert_named_error(_write(tmp_path, content), "is truncated")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # the file is 10 kB; scipy alone would ask for 4 GiB


def test_rf64_claiming_exabytes(tmp_path):
    header = b"RF64" + b"\xff" * 4 + b"WAVE" + b"ds64" + struct.pack("<IQQQI", 28, 2**63, 2**63, 2**62, 0)
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    file = _write(tmp_path, header + fmt + b"data" + b"\xff" * 4 + bytes(100))
    _assert_named_error(file, "OverflowError")


# Header fields of the real recording: 20 encoding, 22 channels, 24 sample rate, 28 bytes per second
# (scipy checks it is rate x block size), 32 block size (bytes per frame), 34 bits per sample.
MALFORMED_FIELDS = {
    "zero channels": ([(22, "<H", 0)], "ZeroDivisionError"),
    "zero block size": ([(32, "<H", 0), (28, "<I", 0)], "ZeroDivisionError"),
    "unknown encoding": ([(20, "<H", 0x1234)], "Unknown wave file format"),
    "17-byte float samples": ([(20, "<H", 3), (32, "<H", 17), (28, "<I", 8000 * 17)], "not a readable wav file"),
    "fmt chunk of 2 bytes": ([(16, "<I", 2)], "not a readable wav file"),
    "RIFF length ends before the data": ([(4, "<I", 20)], "no fmt or data chunk"),
    "inconsistent bytes per second": ([(28, "<I", 1)], "nAvgBytesPerSec must equal"),
    "sample rate 0": ([(24, "<I", 0), (28, "<I", 0)], "sample rate of 0 Hz"),
    "sample rate 1 Hz": ([(24, "<I", 1), (28, "<I", 2)], "sample rate of 1 Hz"),
    "sample rate 2 MHz": ([(24, "<I", 2_000_000), (28, "<I", 4_000_000)], "sample rate of 2000000 Hz"),
}


@pytest.mark.parametrize("case", MALFORMED_FIELDS)
def test_malformed_header_fields(tmp_path, wav_bytes, case):
    patches, what = MALFORMED_FIELDS[case]
    _assert_named_error(_write(tmp_path, _patched(wav_bytes, patches)), what)


def test_fuzzed_headers_read_or_raise_recording_error(tmp_path, wav_bytes):
    """300 copies with 1-3 random bytes or fields changed in the header: a wav or a RecordingError."""
    rng = np.random.default_rng(7)
    outcomes = {"read": 0, "refused": 0}
    for i in range(300):
        data = bytearray(_patched(wav_bytes[:2000], [(4, "<I", 2000 - 8), (40, "<I", 2000 - 44)]))  # consistent
        for _ in range(rng.integers(1, 4)):
            offset = int(rng.integers(0, 60))
            if rng.random() < 0.5:
                data[offset] = rng.integers(256)
            else:
                data[offset:offset + 4] = struct.pack("<I", int(rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF])))
        file = _write(tmp_path, bytes(data), f"fuzz_{i}.wav")
        try:
            waveform = helpers.read_wav(file)
        except RecordingError as err:
            assert str(file) in str(err)
            outcomes["refused"] += 1
        else:
            assert waveform.dtype == np.float32 and waveform.ndim == 1 and np.abs(waveform).max() <= 1
            outcomes["read"] += 1
    assert min(outcomes.values()) > 20, outcomes  # both kinds happen


def test_file_over_the_size_limit_is_refused_unread(tmp_path, wav_bytes, monkeypatch):
    monkeypatch.setattr(audio, "MAX_WAV_BYTES", 10_000)
    _assert_named_error(_write(tmp_path, wav_bytes), "read_wav reads wav files up to")


def test_folder_named_wav_is_named(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    _assert_named_error(tmp_path / "folder.wav", "not a readable wav file")


def test_unknown_chunks_are_skipped_quietly(tmp_path, wav_bytes):
    extra = b"id3 " + struct.pack("<I", 6) + b"tagged"
    content = _patched(wav_bytes[:36] + extra + wav_bytes[36:], [(4, "<I", len(wav_bytes) + len(extra) - 8)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        waveform = helpers.read_wav(_write(tmp_path, content))
    np.testing.assert_array_equal(waveform, helpers.read_wav(_write(tmp_path, wav_bytes, "plain.wav")))
