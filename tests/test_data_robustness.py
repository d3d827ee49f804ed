"""Robustness of the data entry points: bad input, broken downloads, reproducible reruns (issue 7).

Covers download_fsdd, read_wav, load_waveform and SpokenDigits. Test wavs are written with
scipy in tmp_path, bad archives are built with tarfile, and downloads are served by http.server
on 127.0.0.1 only. The real archive comes from FSDD_SOURCE or shared/fsdd beside the repository.
"""
from __future__ import annotations

import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

import helpers
from conftest import ROOT, nb
from helpers import FSDDError, RecordingError

ARCHIVE_NAME = f"free-spoken-digit-dataset-{helpers.FSDD_VERSION}.tar.gz"
TOP = f"free-spoken-digit-dataset-{helpers.FSDD_VERSION}"  # top folder inside the archive


# -----------------------------------------------------------------------------
# fixtures and builders

def _tone(rate: int = 8000, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    """A sine tone of amplitude 0.5 as float64."""
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def _write_wav(path: Path, data: np.ndarray, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, data)
    return path


def _int16_tone(**kw) -> np.ndarray:
    return np.round(_tone(**kw) * 32767).astype(np.int16)


def _make_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """Write a .tar.gz with the given (TarInfo, content) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link_member(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _wav_bytes(seed: int) -> bytes:
    """A distinct small int16 wav file as bytes."""
    buffer = io.BytesIO()
    wavfile.write(buffer, 8000, np.random.default_rng(seed).integers(-3000, 3000, 800).astype(np.int16))
    return buffer.getvalue()


@pytest.fixture
def small_fsdd(tmp_path, monkeypatch) -> Path:
    """A 20-recording stand-in for the FSDD archive, with helpers' expected count and checksum patched.

    It lets the whole download path (fetch, extract, verify, rename) run in milliseconds.
    """
    folder = tmp_path / "small-src"
    folder.mkdir()
    members = []
    for i in range(20):
        name = f"{i % 10}_tester_{i // 10}.wav"
        (folder / name).write_bytes(_wav_bytes(i))
        members.append(_file_member(f"{TOP}/recordings/{name}", _wav_bytes(i)))
    members.append(_file_member(f"{TOP}/README.md", b"# FSDD\n"))
    members.append(_file_member(f"{TOP}/recordings/.DS_Store", b"\0\0\0\1Bud1"))
    monkeypatch.setattr(helpers, "FSDD_NUM_FILES", 20)
    monkeypatch.setattr(helpers, "FSDD_RECORDINGS_SHA256", helpers.recordings_digest(folder))
    monkeypatch.delenv("FSDD_SOURCE", raising=False)
    return _make_archive(tmp_path / "small.tar.gz", members)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.payload` at any path; `server.mode` picks how it misbehaves."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self):
        payload, mode = self.server.payload, self.server.mode
        if mode == "404":
            self.send_error(404)
            return
        self.send_response(200)
        if mode == "chunked-cut":  # chunked encoding, closed in the middle of a chunk
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % len(payload) + payload[: len(payload) // 2])
        elif mode == "no-length-cut":  # no Content-Length, closed half way
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload if mode == "ok" else payload[: len(payload) // 2])  # "cut"
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def robust_server():
    """An HTTP server on 127.0.0.1 in a thread; it shuts itself down after 120 s at the latest."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.payload, server.mode = b"", "ok"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    deadline = threading.Timer(120, server.shutdown)
    deadline.start()
    yield server
    deadline.cancel()
    server.shutdown()
    server.server_close()
    thread.join(10)


def _url(server, name: str = ARCHIVE_NAME) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def _left_behind(data_dir: Path) -> list[str]:
    """Everything in data_dir (hidden temp folders included); [] if it does not exist."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")) if data_dir.exists() else []


# -----------------------------------------------------------------------------
# read_wav: formats a user may have

def test_read_wav_int16_matches_fsdd_scaling(tmp_path):
    data = _int16_tone()
    out = helpers.read_wav(_write_wav(tmp_path / "0_t_0.wav", data))
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_array_equal(out, data.astype(np.float32) / 32768)  # exact: division by a power of two


@pytest.mark.parametrize("dtype, encode, tolerance", [
    ("uint8", lambda x: np.round(x * 127 + 128).astype(np.uint8), 1 / 128),
    ("int32", lambda x: np.round(x * (2**31 - 1)).astype(np.int32), 1e-6),
    ("float32", lambda x: x.astype(np.float32), 1e-7),
    ("float64", lambda x: x, 1e-7),
])
def test_read_wav_converts_each_sample_format_to_float(tmp_path, dtype, encode, tolerance):
    tone = _tone()
    out = helpers.read_wav(_write_wav(tmp_path / f"{dtype}.wav", encode(tone)))
    assert out.dtype == np.float32 and out.shape == tone.shape
    np.testing.assert_allclose(out, tone, atol=tolerance)


def test_read_wav_24_bit(tmp_path):
    tone = np.round(_tone() * (2**23 - 1)).astype("<i4")
    with wave.open(str(tmp_path / "24bit.wav"), "wb") as out:  # scipy cannot write 24-bit wavs
        out.setnchannels(1)
        out.setsampwidth(3)
        out.setframerate(8000)
        out.writeframes(b"".join(sample.tobytes()[:3] for sample in tone))
    out = helpers.read_wav(tmp_path / "24bit.wav")
    np.testing.assert_allclose(out, _tone(), atol=1e-6)


def test_read_wav_uint8_silence_is_zero(tmp_path):
    out = helpers.read_wav(_write_wav(tmp_path / "u8.wav", np.full(100, 128, np.uint8)))
    np.testing.assert_array_equal(out, 0)


def test_read_wav_keeps_full_scale_in_range(tmp_path):
    for name, data in {"i16": np.array([-32768, 32767], np.int16),
                       "i32": np.array([-2**31, 2**31 - 1], np.int32),
                       "u8": np.array([0, 255], np.uint8),
                       "f32": np.array([-1.5, 1.5], np.float32)}.items():
        out = helpers.read_wav(_write_wav(tmp_path / f"{name}.wav", data))
        assert out.min() == -1 and 0.99 < out.max() <= 1, name


def test_read_wav_mixes_stereo_down_to_mono(tmp_path):
    tone = _int16_tone()
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)  # (samples, 2)
    out = helpers.read_wav(_write_wav(tmp_path / "stereo.wav", stereo))
    assert out.shape == tone.shape
    np.testing.assert_allclose(out, tone / 32768 / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [16000, 44100, 4000])
def test_read_wav_resamples_other_rates_to_8khz(tmp_path, rate):
    out = helpers.read_wav(_write_wav(tmp_path / f"r{rate}.wav", _tone(rate=rate).astype(np.float32), rate))
    expected = _tone(rate=8000)
    assert out.dtype == np.float32 and out.shape == expected.shape
    middle = slice(200, -200)  # the polyphase filter's edges ramp in and out
    np.testing.assert_allclose(out[middle], expected[middle], atol=0.02)


# -----------------------------------------------------------------------------
# bad recordings: every entry point gives a RecordingError naming the file and the fix

def _write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated(path: Path) -> Path:
    return _write_bytes(path, _write_wav(path, _int16_tone()).read_bytes()[:1000])


BAD_RECORDINGS = {
    "truncated": (_truncated, "truncated"),
    "garbage": (lambda p: _write_bytes(p, b"this is not audio\n" * 20), "not a readable wav"),
    "zero bytes": (lambda p: _write_bytes(p, b""), "not a readable wav"),
    "header only": (lambda p: _write_wav(p, np.zeros(0, np.int16)), "no samples"),
    "nan": (lambda p: _write_wav(p, np.array([0.1, np.nan], np.float32)), "NaN"),
}

ENTRY_POINTS = {
    "read_wav": helpers.read_wav,
    "load_waveform": nb.load_waveform,
    "SpokenDigits": lambda file: nb.SpokenDigits(Path(file).parent),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", BAD_RECORDINGS)
def test_bad_recording_is_named_with_its_fix(tmp_path, entry, case):
    make, what = BAD_RECORDINGS[case]
    _write_wav(tmp_path / "0_good_0.wav", _int16_tone())
    bad = make(tmp_path / "1_bad_0.wav")
    with pytest.raises(RecordingError) as err:
        ENTRY_POINTS[entry](bad)
    message = str(err.value)
    assert str(bad) in message and what in message
    assert any(fix in message for fix in ("Replace", "Delete", "download again"))
    assert isinstance(err.value, FSDDError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("entry", ["read_wav", "load_waveform"])
def test_missing_file_is_named(tmp_path, entry):
    missing = tmp_path / "3_nobody_0.wav"
    with pytest.raises(RecordingError, match="3_nobody_0.wav"):
        ENTRY_POINTS[entry](missing)


def test_load_waveform_pads_and_normalizes_any_format(tmp_path):
    file = _write_wav(tmp_path / "5_x_0.wav", np.stack([_tone(16000, 0.25)] * 2, axis=1).astype(np.float32), 16000)
    out = nb.load_waveform(file)
    assert out.shape == (6000,) and out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    assert np.all(out[2000:] == out[-1])  # 0.25 s at 8 kHz = 2000 samples, then padding


# -----------------------------------------------------------------------------
# SpokenDigits: folders as users leave them

def test_spoken_digits_missing_folder(tmp_path):
    with pytest.raises(FSDDError, match=r"nowhere is not a folder.*download_fsdd\(\)"):
        nb.SpokenDigits(tmp_path / "nowhere")


def test_spoken_digits_folder_is_a_file(tmp_path):
    file = _write_wav(tmp_path / "0_a_0.wav", _int16_tone())
    with pytest.raises(FSDDError, match="0_a_0.wav is not a folder"):
        nb.SpokenDigits(file)


@pytest.mark.parametrize("junk", [[], ["README.txt"], ["notes.md", ".DS_Store", "._0_a_0.wav"]])
def test_spoken_digits_folder_without_wavs(tmp_path, junk):
    for name in junk:
        (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(FSDDError, match=r"holds no \.wav files.*download_fsdd\(\)"):
        nb.SpokenDigits(tmp_path)


def test_spoken_digits_data_root_instead_of_recordings(tmp_path):
    _write_wav(tmp_path / "data" / TOP / "recordings" / "0_a_0.wav", _int16_tone())
    root = tmp_path / "data"  # not data/free-spoken-digit-dataset-1.0.10/recordings
    with pytest.raises(FSDDError, match=r"holds no \.wav files.*\.\.\./recordings"):
        nb.SpokenDigits(root)


def test_spoken_digits_ignores_other_files(tmp_path):
    for name in ["0_ann_0.wav", "7_bob_12.wav", "9_ann_3.WAV"]:
        _write_wav(tmp_path / name, _int16_tone())
    (tmp_path / "README.txt").write_text("recordings of my friends\n")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "._0_ann_0.wav").write_bytes(b"\0\5\26\7 macOS resource fork")  # AppleDouble
    (tmp_path / "subfolder.wav").mkdir()
    data = nb.SpokenDigits(tmp_path)
    assert [f.name for f in data.files] == ["0_ann_0.wav", "7_bob_12.wav", "9_ann_3.WAV"]
    assert data.y.tolist() == [0, 7, 9] and data.speakers == ["ann", "bob", "ann"] and data.takes == [0, 12, 3]
    assert data.x.shape == (3, 1, 6000)


@pytest.mark.parametrize("name", ["hello.wav", "7-jackson-32.wav", "10_ann_0.wav", "7_ann.wav", "x_ann_1.wav"])
def test_spoken_digits_bad_file_name_is_named(tmp_path, name):
    _write_wav(tmp_path / "0_ann_0.wav", _int16_tone())
    _write_wav(tmp_path / name, _int16_tone())
    with pytest.raises(RecordingError, match=rf"{name}: expected a name like '7_jackson_32.wav'.*Rename"):
        nb.SpokenDigits(tmp_path)
    with pytest.raises(ValueError, match=name):
        helpers.parse_file_name(tmp_path / name)


def test_spoken_digits_mixed_formats_match_load_waveform(tmp_path):
    files = [_write_wav(tmp_path / "0_a_0.wav", _int16_tone()),
             _write_wav(tmp_path / "1_a_0.wav", np.round(_tone() * 127 + 128).astype(np.uint8)),
             _write_wav(tmp_path / "2_a_0.wav", np.stack([_tone(44100)] * 2, 1).astype(np.float32), 44100),
             _write_wav(tmp_path / "3_a_0.wav", np.round(_tone(16000) * 2**30).astype(np.int32), 16000)]
    data = nb.SpokenDigits(tmp_path)
    for i, file in enumerate(files):
        np.testing.assert_array_equal(data.x[i, 0].numpy(), nb.load_waveform(file))
    # after conversion and resampling all four are the same tone
    np.testing.assert_allclose(data.x[1:, 0, 200:3800], data.x[:1, 0, 200:3800].expand(3, -1), atol=0.05)


# -----------------------------------------------------------------------------
# download_fsdd: archives

def test_download_small_archive_from_path_ignores_other_members(tmp_path, small_fsdd):
    recordings = helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    assert sorted(p.name for p in recordings.iterdir()) == sorted(
        [f"{i % 10}_tester_{i // 10}.wav" for i in range(20)] + [".complete"])
    assert _left_behind(tmp_path / "data") == [TOP, f"{TOP}/recordings"] + sorted(
        f"{TOP}/recordings/{p.name}" for p in recordings.iterdir())
    assert len(nb.SpokenDigits(recordings)) == 20
    # a rerun returns the same folder without touching it
    before = {p.name: p.stat().st_mtime_ns for p in recordings.iterdir()}
    assert helpers.download_fsdd(tmp_path / "data", source=tmp_path / "does-not-matter.tar.gz") == recordings
    assert {p.name: p.stat().st_mtime_ns for p in recordings.iterdir()} == before


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "hardlink", "symlinked-folder"])
def test_download_refuses_unsafe_archive_members(tmp_path, small_fsdd, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    good = [_file_member(f"{TOP}/recordings/0_a_{i}.wav", _wav_bytes(i)) for i in range(3)]
    evil = {
        "dotdot": [_file_member(f"{TOP}/recordings/../../../outside/0_a_9.wav", b"pwned")],
        "absolute": [_file_member(f"{outside}/recordings/0_a_9.wav", b"pwned")],
        "symlink": [_link_member(f"{TOP}/recordings/0_a_9.wav", "/etc/passwd")],
        "hardlink": [_link_member(f"{TOP}/recordings/0_a_9.wav", "/etc/passwd", tarfile.LNKTYPE)],
        "symlinked-folder": [_link_member(f"{TOP}/recordings", str(outside)),
                             _file_member(f"{TOP}/recordings/0_a_9.wav", b"pwned")],
    }[case]
    archive = _make_archive(tmp_path / f"{case}.tar.gz", good + evil)
    data_dir = tmp_path / "data"
    with pytest.raises(FSDDError) as err:
        helpers.download_fsdd(data_dir, source=archive)
    message = str(err.value)
    if case == "symlinked-folder":  # a link to a folder is never followed: its files land in staging
        assert "holds 4 recordings, expected 20" in message
    else:
        assert "Refusing" in message and str(archive) in message and "genuine FSDD archive" in message
    assert _left_behind(data_dir) == [] and not data_dir.exists()
    assert _left_behind(outside) == []


@pytest.mark.parametrize("content", [b"", b"PK\3\4 a zip file, not a tarball" * 50, b"\x1f\x8b\x08" + bytes(500)])
def test_download_corrupt_small_archive(tmp_path, small_fsdd, content):
    archive = _write_bytes(tmp_path / "corrupt.tar.gz", content)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "my-notes.txt").write_text("keep me")
    with pytest.raises(FSDDError, match=rf"(?s){archive} is corrupt or not a \.tar\.gz.*FSDD_SOURCE"):
        helpers.download_fsdd(data_dir, source=archive)
    assert _left_behind(data_dir) == ["my-notes.txt"]


@pytest.mark.parametrize("position", [0, 3, 100, 0.1, 0.3, 0.5, 0.7, 0.9, -8, -1])
def test_download_flipped_byte_in_small_archive_never_gives_wrong_data(tmp_path, small_fsdd, position):
    data = bytearray(small_fsdd.read_bytes())
    data[position if isinstance(position, int) else int(position * len(data))] ^= 0xFF
    archive = _write_bytes(tmp_path / "flipped.tar.gz", bytes(data))
    try:
        recordings = helpers.download_fsdd(tmp_path / "data", source=archive)
    except FSDDError:
        assert not (tmp_path / "data").exists()
    else:  # the damage was outside what is read (e.g. in the gzip trailer): the content still verifies
        assert helpers.recordings_digest(recordings) == helpers.FSDD_RECORDINGS_SHA256


def test_download_archive_with_too_few_recordings(tmp_path, small_fsdd):
    archive = _make_archive(tmp_path / "few.tar.gz", [_file_member(f"{TOP}/recordings/0_a_0.wav", _wav_bytes(0))])
    with pytest.raises(FSDDError, match=rf"{archive} holds 1 recordings, expected 20"):
        helpers.download_fsdd(tmp_path / "data", source=archive)


def test_download_changed_recording_fails_checksum(tmp_path, small_fsdd):
    with tarfile.open(small_fsdd) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    members[0] = (members[0][0], _wav_bytes(99))  # same name, other content
    archive = _make_archive(tmp_path / "changed.tar.gz", members)
    with pytest.raises(FSDDError, match="fail the checksum"):
        helpers.download_fsdd(tmp_path / "data", source=archive)
    assert not (tmp_path / "data").exists()


def test_download_missing_source_file(tmp_path, small_fsdd):
    with pytest.raises(FSDDError, match=r"nothing\.tar\.gz does not exist\. Set FSDD_SOURCE"):
        helpers.download_fsdd(tmp_path / "data", source=tmp_path / "nothing.tar.gz")
    with pytest.raises(FSDDError, match=r"is a folder, not an archive\. Set FSDD_SOURCE"):
        helpers.download_fsdd(tmp_path / "data", source=tmp_path)
    assert not (tmp_path / "data").exists()


def test_download_source_from_environment(tmp_path, small_fsdd, monkeypatch):
    monkeypatch.setenv("FSDD_SOURCE", str(small_fsdd))
    assert (helpers.download_fsdd(tmp_path / "data") / ".complete").is_file()


def test_download_data_dir_is_a_file(tmp_path, small_fsdd):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(FSDDError, match="data is a file, not a folder"):
        helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    assert (tmp_path / "data").read_text() == "not a folder"


def test_download_keeps_a_partial_folder(tmp_path, small_fsdd):
    partial = tmp_path / "data" / TOP / "recordings"
    _write_wav(partial / "0_mine_0.wav", _int16_tone())
    with pytest.raises(FSDDError, match=rf"{partial.parent} exists but is not a complete download.*move or delete it"):
        helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    assert _left_behind(tmp_path / "data") == [TOP, f"{TOP}/recordings", f"{TOP}/recordings/0_mine_0.wav"]


def test_download_notices_deleted_recordings_but_ignores_other_files(tmp_path, small_fsdd):
    recordings = helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    (recordings / "README.txt").write_text("my notes")
    (recordings / ".DS_Store").write_bytes(b"junk")
    assert helpers.download_fsdd(tmp_path / "data") == recordings
    (recordings / "0_tester_0.wav").unlink()
    with pytest.raises(FSDDError, match=rf"{recordings} holds 19 recordings, expected 20.*Delete {recordings.parent}"):
        helpers.download_fsdd(tmp_path / "data")
    assert len(list(recordings.glob("*.wav"))) == 19 and (recordings / "README.txt").exists()


def test_download_parallel_run_finishing_first_is_fine(tmp_path, small_fsdd, monkeypatch):
    verify = helpers._verify_recordings

    def verify_while_another_run_finishes(folder, source):
        verify(folder, source)
        shutil.copytree(folder, tmp_path / "data" / TOP / "recordings")  # the other run's result
        (tmp_path / "data" / TOP / "recordings" / ".complete").write_text("done\n")

    monkeypatch.setattr(helpers, "_verify_recordings", verify_while_another_run_finishes)
    recordings = helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    assert (recordings / ".complete").read_text() == "done\n"
    assert os.listdir(tmp_path / "data") == [TOP]  # no temp folder left


def test_download_after_a_killed_run(tmp_path, small_fsdd):
    stale = tmp_path / "data" / ".fsdd-download-killed" / TOP / "recordings"  # as left by kill -9
    stale.mkdir(parents=True)
    (stale / "0_tester_0.wav").write_bytes(b"half a file")
    recordings = helpers.download_fsdd(tmp_path / "data", source=small_fsdd)
    assert len(list(recordings.glob("*.wav"))) == 20
    assert stale.exists()  # never deleted: it might belong to a run still going


# -----------------------------------------------------------------------------
# download_fsdd: network (127.0.0.1 only)

def test_download_over_http_small(tmp_path, small_fsdd, robust_server):
    robust_server.payload = small_fsdd.read_bytes()
    recordings = helpers.download_fsdd(tmp_path / "data", source=_url(robust_server))
    assert len(list(recordings.glob("*.wav"))) == 20


@pytest.mark.parametrize("mode, message", [
    ("cut", "was interrupted"),  # Content-Length larger than what arrives
    ("chunked-cut", "Could not download"),
    ("no-length-cut", "is corrupt or not a .tar.gz"),
    ("404", "Could not download.*404"),
])
def test_download_interrupted_leaves_nothing_and_rerun_works(tmp_path, small_fsdd, robust_server, mode, message):
    robust_server.payload, robust_server.mode = small_fsdd.read_bytes(), mode
    data_dir = tmp_path / "new" / "data"
    with pytest.raises(FSDDError, match=message):
        helpers.download_fsdd(data_dir, source=_url(robust_server))
    assert not (tmp_path / "new").exists()
    robust_server.mode = "ok"
    assert len(list(helpers.download_fsdd(data_dir, source=_url(robust_server)).glob("*.wav"))) == 20


def test_download_offline_fails_fast_with_hint(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port on 127.0.0.1 that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(helpers, "FSDD_URL", f"http://127.0.0.1:{port}/v1.0.10.tar.gz")
    monkeypatch.delenv("FSDD_SOURCE", raising=False)
    start = time.monotonic()
    with pytest.raises(FSDDError) as err:
        helpers.download_fsdd(tmp_path / "data")
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(err.value) and "Offline? Point FSDD_SOURCE at a copy" in str(err.value)
    assert not (tmp_path / "data").exists()


# -----------------------------------------------------------------------------
# download_fsdd: the real archive

def test_real_archive_from_path(recordings):
    assert recordings.name == "recordings" and recordings.parent.name == TOP
    assert (recordings / ".complete").read_text().strip() == helpers.FSDD_RECORDINGS_SHA256
    assert len(list(recordings.glob("*.wav"))) == 3000
    assert _left_behind(recordings.parent.parent) == [TOP, f"{TOP}/recordings"] + sorted(
        f"{TOP}/recordings/{p.name}" for p in recordings.iterdir())


def test_real_archive_over_http(tmp_path, fsdd_archive, robust_server, recordings):
    robust_server.payload = fsdd_archive.read_bytes()
    downloaded = helpers.download_fsdd(tmp_path / "new" / "nested", source=_url(robust_server))
    assert helpers.recordings_digest(downloaded) == helpers.FSDD_RECORDINGS_SHA256
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(p.name for p in recordings.iterdir())


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_real_archive_damaged_copy(tmp_path, fsdd_archive, recordings, damage):
    data = bytearray(fsdd_archive.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x55  # one flipped byte a third of the way in
    archive = _write_bytes(tmp_path / ARCHIVE_NAME, bytes(data))
    before = {p.name: p.stat().st_mtime_ns for p in recordings.iterdir()}
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(FSDDError, match="corrupt|fail the checksum|expected 3000"):
        helpers.download_fsdd(data_dir, source=archive)
    assert _left_behind(data_dir) == []  # no temp folders either
    # the complete data elsewhere is untouched and still loads
    assert {p.name: p.stat().st_mtime_ns for p in recordings.iterdir()} == before
    assert helpers.download_fsdd(recordings.parent.parent, source=archive) == recordings


# -----------------------------------------------------------------------------
# reproducible reruns

TRAIN_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import torch
    import helpers
    from scripts.notebook_definitions import notebook_definitions

    helpers.set_threads()  # the notebook's fixed thread count
    nb = notebook_definitions()
    data = nb["SpokenDigits"](sys.argv[2])
    for seed in map(int, sys.argv[3:]):
        torch.manual_seed(seed)
        result = helpers.train(nb["build_net"](), helpers.BatchLoader(data, 25, shuffle=True, max_shift=400),
                               helpers.BatchLoader(data, 25), 2, 0.02, animate=False)
        weights = sum(p.double().sum().item() for p in result.net.parameters())
        for epoch, (loss, train_acc, test_acc) in enumerate(result.history):
            print(f"seed {seed} epoch {epoch} loss {loss!r} accuracy {train_acc!r} test {test_acc!r} "
                  f"fit {result.fit_acc!r} weights {weights!r}")
""")



@pytest.mark.slow
def test_training_reruns_give_identical_metrics(tmp_path, recordings):
    """Two processes train the notebook's 3.6 network with helpers.train (shuffled, time-shifted batches, the
    notebook's thread count) for 2 epochs on 200 real recordings: the same numbers, digit for digit."""
    subset = tmp_path / "recordings"
    subset.mkdir()
    for file in sorted(recordings.glob("*.wav"))[::15]:  # 200 files, all digits and speakers
        shutil.copy(file, subset / file.name)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(*seeds: int) -> list[str]:
        result = subprocess.run([sys.executable, str(script), str(ROOT), str(subset), *map(str, seeds)],
                                capture_output=True, text=True, env=env, timeout=180)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    first = run(0)
    second = run(0, 1)
    assert len(first) == 2 and first[0].startswith("seed 0 epoch 0 loss ")
    # exact: both processes run here, on the same CPU with the same thread count
    assert second[:2] == first  # a fresh process reproduces every digit
    assert [line.split(" ", 2)[2] for line in second[2:]] != [line.split(" ", 2)[2] for line in first]
