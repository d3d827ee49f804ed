"""audio.read_audio: recordings in the formats phones, browsers and people use (flac, ogg/Opus, mp3, m4a/AAC,
webm), each made here from a real FSDD recording with PyAV itself, read as the wav they came from."""
from __future__ import annotations

import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly

import audio
import reader

# (file name, container format, codec, sample rate, channels): what a phone, a browser or a download gives
FORMATS = [("take.flac", "flac", "flac", 44100, 2), ("note.ogg", "ogg", "libopus", 48000, 1),
           ("share.mp3", "mp3", "libmp3lame", 44100, 2), ("phone.m4a", "mp4", "aac", 44100, 1),
           ("browser.webm", "webm", "libopus", 48000, 2)]


def encode(file: Path, waveform: np.ndarray, container: str, codec: str, rate: int, channels: int) -> Path:
    """Write an 8 kHz waveform as `file`: resampled to `rate`, `channels` equal channels, encoded by PyAV."""
    common = math.gcd(rate, audio.SAMPLE_RATE)
    samples = resample_poly(waveform, rate // common, audio.SAMPLE_RATE // common).astype(np.float32)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(file), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.stack([samples] * channels), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return file


def aligned_correlation(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(lag of b behind a in samples, peak normalized cross-correlation): 1.0 for the same signal."""
    c = np.correlate(b, a, "full")
    return int(c.argmax()) - (len(a) - 1), float(c.max() / np.sqrt(np.square(a).sum() * np.square(b).sum()))


@pytest.mark.parametrize("name, container, codec, rate, channels", FORMATS)
def test_read_audio_gives_the_recording_back(tmp_path, recordings, name, container, codec, rate, channels):
    original = audio.read_wav(recordings / "7_george_3.wav")
    read = audio.read_audio(encode(tmp_path / name, original, container, codec, rate, channels))
    lag, correlation = aligned_correlation(original, read)
    assert read.dtype == np.float32 and read.ndim == 1 and np.abs(read).max() <= 1
    assert abs(len(read) - len(original)) <= 0.04 * audio.SAMPLE_RATE + abs(lag)  # codec padding: tens of ms
    assert abs(lag) <= 0.03 * audio.SAMPLE_RATE and correlation > 0.95, (lag, correlation)


def test_read_audio_reads_wav_through_read_wav(recordings):
    assert np.array_equal(audio.read_audio(recordings / "3_theo_7.wav"), audio.read_wav(recordings / "3_theo_7.wav"))


@pytest.mark.parametrize("content, message", [(b"", r"is not a readable recording \(it is empty\)"),
                                              (b"not audio at all " * 40, "could not be decoded as audio"),
                                              (None, "is not a readable recording .*No such file")])
def test_a_file_that_cannot_be_decoded_is_named(tmp_path, content, message):
    file = tmp_path / "broken.m4a"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(audio.RecordingError, match=re.escape(str(file)) + " " + message):
        audio.read_audio(file)


def test_a_cut_file_is_read_up_to_the_cut_or_named(tmp_path, recordings):
    file = encode(tmp_path / "cut.mp3", audio.read_wav(recordings / "5_lucas_9.wav"), "mp3", "libmp3lame", 44100, 1)
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    try:
        read = audio.read_audio(file)
    except audio.RecordingError as err:
        assert str(file) in str(err)
    else:
        assert 0 < len(read) < len(audio.read_wav(recordings / "5_lucas_9.wav"))


def test_folders_stand_for_every_format(tmp_path, recordings):
    for name, container, codec, rate, channels in FORMATS:
        encode(tmp_path / name.upper(), audio.read_wav(recordings / "1_yweweler_4.wav"), container, codec, rate, channels)
    (tmp_path / "notes.txt").write_text("not audio")
    found = reader.files_to_classify([tmp_path])
    assert [f.name for f in found] == sorted(name.upper() for name, *_ in FORMATS)
