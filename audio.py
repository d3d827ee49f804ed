"""Reading recordings: the one place that reads and checks a recording, for the notebook (wav files, through
helpers) and the recognizer (any common format). Any rate, mono or stereo; mono float32 at 8 kHz out."""
from __future__ import annotations

import io
import math
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly


class FSDDError(RuntimeError):
    """The spoken-digit data could not be downloaded, verified or read."""


class RecordingError(FSDDError, ValueError):
    """One recording is unreadable, empty or badly named (the message names the file)."""



SAMPLE_RATE = 8000  # Hz; every FSDD recording uses it
FILE_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)\.(?i:wav)$")


MAX_WAV_BYTES = 1 << 30  # read_wav refuses bigger files before reading them (18 hours of 16-bit 8 kHz)
SAMPLE_RATES = range(1000, 768_001)  # Hz; resampling from a rate outside would take absurd time or memory
_FIX = "Replace it with a good copy (for FSDD: delete the data folder and download again)."
# What scipy's wav reader raised on fuzzed headers (short fields, zero channels or block size, unknown
# sample types, RF64 sizes over 2**63), besides _Truncated; IndexError and MemoryError as a safety net.
_WAV_ERRORS = (ValueError, TypeError, struct.error, EOFError, OverflowError, ZeroDivisionError, IndexError,
               MemoryError)


class _Truncated(EOFError):
    """The wav file ends before the length that its header gives."""


class _WavBytes(io.BytesIO):
    """A wav file in memory for scipy: a read past its end raises _Truncated instead of coming back short,
    so a huge length in the header allocates nothing and a cut file is never read as a shorter one."""

    def read(self, size: int | None = -1) -> bytes:
        start = self.tell()
        chunk = super().read(size)
        if start >= 4 and size is not None and len(chunk) < size:  # after the 4-byte 'RIFF' signature
            raise _Truncated
        return chunk


def _file_bytes(file: str | os.PathLike, what: str = "wav file") -> bytes:
    """The content of a recording (`what` it is, for the messages), checked to be neither missing, empty nor
    over MAX_WAV_BYTES."""
    try:
        with open(file, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            content = stream.read() if size <= MAX_WAV_BYTES else b""
    except OSError as err:
        raise RecordingError(f"{file} is not a readable {what} ({err}). {_FIX}") from err
    if size > MAX_WAV_BYTES:
        raise RecordingError(f"{file} is {size / 2**30:.1f} GiB; read_wav reads wav files up to "
                             f"{MAX_WAV_BYTES / 2**30:.0f} GiB. Cut it into shorter recordings.")
    if not content:
        raise RecordingError(f"{file} is not a readable {what} (it is empty). {_FIX}")
    return content


def _read_wav_file(file: str | os.PathLike) -> tuple[int, np.ndarray]:
    """scipy's (sample rate, samples) of a wav file; any malformed content raises RecordingError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # e.g. unknown chunks, which it skips
            return wavfile.read(_WavBytes(_file_bytes(file)))
    except _Truncated:
        raise RecordingError(f"{file} is truncated (it ends before the length in its header). {_FIX}") from None
    except UnboundLocalError:  # scipy found no fmt or data chunk within the length in the header
        raise RecordingError(f"{file} is not a readable wav file (no fmt or data chunk within the length in "
                             f"its header). {_FIX}") from None
    except RecordingError:
        raise
    except _WAV_ERRORS as err:
        raise RecordingError(f"{file} is not a readable wav file ({type(err).__name__}: {err}). {_FIX}") from err


def read_wav(file: str | os.PathLike) -> np.ndarray:
    """Mono samples of a wav file at 8 kHz as float32 in [-1, 1].

    Reads 8/16/24/32-bit integer and float wavs; averages the channels of stereo files and
    resamples other rates to 8 kHz. Raises RecordingError naming the file if it is unusable:
    missing, empty, cut anywhere, malformed, over MAX_WAV_BYTES or at a rate outside SAMPLE_RATES.
    """
    rate, waveform = _read_wav_file(file)
    if waveform.dtype == np.uint8:  # 8-bit wavs are unsigned, silence at 128
        waveform = (waveform.astype(np.float32) - 128) / 128
    elif np.issubdtype(waveform.dtype, np.signedinteger):
        waveform = waveform.astype(np.float32) / -np.iinfo(waveform.dtype).min
    return mono_8khz(file, rate, waveform)


def mono_8khz(file: str | os.PathLike, rate: int, waveform: np.ndarray) -> np.ndarray:
    """Float samples of `file` (samples,) or (samples, channels) at `rate` as mono float32 at 8 kHz in [-1, 1]:
    the channels averaged, resampled (polyphase); RecordingError for a bad rate, no samples, NaN or inf."""
    if rate not in SAMPLE_RATES:
        raise RecordingError(f"{file} claims a sample rate of {rate} Hz; recordings are read at "
                             f"{SAMPLE_RATES.start}-{SAMPLE_RATES.stop - 1} Hz. {_FIX}")
    if waveform.size == 0:
        raise RecordingError(f"{file} holds no samples. Delete it or replace it with a real recording.")
    if not np.all(np.isfinite(waveform)):
        raise RecordingError(f"{file} holds NaN or infinite samples. Replace it with a good recording.")
    if waveform.ndim == 2:  # (samples, channels) -> mono
        waveform = waveform.mean(axis=1)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        waveform = resample_poly(waveform, SAMPLE_RATE // common, rate // common)
    return np.clip(waveform, -1, 1).astype(np.float32)


# -----------------------------------------------------------------------------
# Other formats: flac, ogg/Opus, mp3, m4a/AAC, webm, ... decoded by PyAV (FFmpeg's decoders, in its wheel)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac", ".webm", ".weba", ".mka")


def _decode(file: str | os.PathLike) -> tuple[int, np.ndarray]:
    """(sample rate, float samples (samples, channels)) of the first audio stream in `file`, decoded by PyAV."""
    import av  # imported here: wav files (FSDD, the notebook) do not need it
    content = _file_bytes(file, "recording")  # missing, empty or over MAX_WAV_BYTES: the checks a wav file gets
    try:
        with av.open(io.BytesIO(content)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise RecordingError(f"{file} holds no audio stream. Pass a recording (wav, flac, ogg, opus, "
                                     "mp3, m4a, webm).")
            to_float = av.AudioResampler(format="fltp")  # planar float: (channels, samples) per frame
            frames = [out for frame in container.decode(stream) for out in to_float.resample(frame)]
            chunks = [out.to_ndarray() for out in frames + to_float.resample(None)]  # resample(None): the rest
            rate = stream.codec_context.sample_rate
    except av.FFmpegError as err:
        raise RecordingError(f"{file} could not be decoded as audio ({err}). Convert it to wav, or replace it "
                             "with a good copy.") from err
    return rate, (np.concatenate(chunks, axis=1).T if chunks else np.zeros((0, 1), np.float32))


def read_audio(file: str | os.PathLike) -> np.ndarray:
    """Mono samples of a recording at 8 kHz as float32 in [-1, 1], in any common format: .wav files through
    read_wav, others (flac, ogg/Opus, mp3, m4a/AAC, webm, ...) decoded by PyAV; RecordingError naming the file."""
    if Path(file).suffix.lower() == ".wav":
        return read_wav(file)
    return mono_8khz(file, *_decode(file))


def parse_file_name(file: str | os.PathLike) -> tuple[int, str, int]:
    """(digit, speaker, index) from a name like '7_jackson_32.wav'."""
    match = FILE_NAME.match(Path(file).name)
    if match is None:
        raise RecordingError(f"{file}: expected a name like '7_jackson_32.wav' ({{digit}}_{{speaker}}_"
                             "{index}.wav). Rename the file or move it out of the folder.")
    return int(match["digit"]), match["speaker"], int(match["index"])


def list_recordings(folder: str | os.PathLike, suffixes: tuple[str, ...] = (".wav",)) -> list[Path]:
    """Sorted files in `folder` whose suffix (any case) is one of `suffixes`; other files and hidden ones
    (e.g. macOS '._*.wav') are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FSDDError(f"{folder} is not a folder. Pass the folder that download_fsdd() returns, "
                        "e.g. SpokenDigits(download_fsdd()).")
    files = sorted(f for f in folder.iterdir()
                   if f.suffix.lower() in suffixes and not f.name.startswith(".") and f.is_file())
    if not files:
        raise FSDDError(f"{folder} holds no {', '.join(suffixes)} files. Pass the folder that download_fsdd() "
                        "returns (.../recordings), or put recordings named like 7_jackson_32.wav in it.")
    return files

