"""Reading digits without torch: the recognizer's path from a recording to its digits, as every run of
tools/recognize.py after the first takes it (started in about a second, in a few hundred MB).

    files          files_to_classify: the recordings that the paths on a command line stand for
    front ends     waveforms (8 kHz, any length) -> network input, numpy arrays: Google's speech embedding
                   (onnxruntime), MFCCs, the standardized waveform
    segmentation   speech_segments: the spoken parts of a long recording, one digit each
    network        Network: a trained network's layers as numpy arrays; Model: networks on their own front
                   ends, their log-probabilities summed with weights; saved with a header and loaded
    reading        classify (a second look at unsure digits), read_parts, read_digits, read_files: the digits
                   and their probability

recognizer.py trains the networks (torch) and hands them over as a Model (recognizer.export); this module
never imports torch, so a saved model is read without it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from python_speech_features import mfcc
from scipy.signal import resample_poly

import audio
from atomic import write_atomically

SIZE = 6000  # samples kept per recording by the waveform and MFCC front ends (0.75 s at 8 kHz), as in the notebook


# -----------------------------------------------------------------------------
# Files to classify

class UsageError(Exception):
    """A path on the command line that cannot be classified at all (the message says why)."""


def audio_files(path: Path) -> list[Path]:
    """The path itself if it is a file; the recordings (audio.AUDIO_SUFFIXES) directly inside it if it is a folder."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise UsageError(f"{path} does not exist. Pass recordings or folders that hold them.")
    try:
        return audio.list_recordings(path, audio.AUDIO_SUFFIXES)
    except audio.FSDDError:
        raise UsageError(f"{path} holds no recordings ({' '.join(audio.AUDIO_SUFFIXES)}; subfolders are not "
                         "searched). Pass recordings or the folders that hold them.") from None


def files_to_classify(paths: list[Path]) -> list[Path]:
    """Every file that `paths` stand for, in order; UsageError listing every path that stands for none."""
    files, problems = [], []
    for path in paths:
        try:
            files += audio_files(path)
        except UsageError as err:
            problems.append(str(err))
    if problems:
        raise UsageError("\n".join(problems))
    return files


# -----------------------------------------------------------------------------
# Front ends: waveforms to network input

def standardize(x):
    """Every signal (last axis) to mean 0 and standard deviation 1: a waveform's samples, or each channel
    of MFCCs over its frames (per-utterance cepstral mean and variance normalization, CMVN). numpy or torch."""
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-8)


def fixed_length(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The first `size` samples (last axis), zero-padded if shorter."""
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size)])[..., :size]


def mfcc_frames(waveform: np.ndarray) -> np.ndarray:
    """13 MFCCs per 10 ms frame of an 8 kHz waveform in [-1, 1]: shape (13, frames)."""
    return np.transpose(mfcc(waveform, audio.SAMPLE_RATE)).astype(np.float32)


def waveform_features(waveforms: list[np.ndarray]) -> np.ndarray:
    """(N, 1, SIZE): the first SIZE samples of every waveform, zero-padded and standardized."""
    return standardize(np.stack([fixed_length(w) for w in waveforms]))[:, None].astype(np.float32)


def mfcc_features(waveforms: list[np.ndarray]) -> np.ndarray:
    """(N, 13, 74): MFCCs of the first SIZE samples of every waveform (zero-padded)."""
    return np.stack([mfcc_frames(fixed_length(w)) for w in waveforms])


# Pretrained front end: Google's speech embedding (Lin et al. 2020, arXiv 2002.01322; Apache-2.0),
# the two ONNX files in openwakeword 0.5.1's wheel, run with onnxruntime (openwakeword's code is not used)

EMBEDDING_RATE = 16000  # Hz: the models' input, int16 scale
EMBEDDING_WINDOW, EMBEDDING_STEP = 76, 8  # mel frames (10 ms each) per embedding; frames between embeddings
EMBEDDING_SECONDS = 1.5  # every clip is centred in at least this much silence: the windows sweep over the word
# (1.5 s and 80 ms: 9 windows per digit, as the model streams; 1 s and 20 ms: 11 windows, each holding the whole
# word, scored 94.9% against 97.5% leaving one speaker out without copies: the results file's 'embedding_sweep_*')
EMBEDDING_SIZE = 96
EMBEDDING_BATCH = 16  # windows per call of the embedding model: the same numbers at any size, 8-16 the fastest (cache)


@cache
def embedding_models() -> tuple:
    """The mel-spectrogram and embedding ONNX sessions (one thread each), from openwakeword's package folder."""
    import onnxruntime  # imported here: only the embedding front end needs it
    spec = importlib.util.find_spec("openwakeword")  # finds the package without running its __init__
    if spec is None:
        raise audio.FSDDError("openwakeword is not installed: run "
                              "`.venv/bin/pip install --no-deps -r requirements-nodeps.txt`")
    folder = Path(spec.submodule_search_locations[0]) / "resources" / "models"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return tuple(onnxruntime.InferenceSession(folder / name, options, providers=["CPUExecutionProvider"])
                 for name in ("melspectrogram.onnx", "embedding_model.onnx"))


def embedding_input(waveform: np.ndarray, offset: float = 0.5) -> np.ndarray:
    """An 8 kHz waveform in [-1, 1] as the models' input: upsampled to 16 kHz, int16 scale, placed at `offset`
    (0: start, 0.5: centred, 1: end) of at least EMBEDDING_SECONDS of digital silence."""
    samples = resample_poly(waveform, EMBEDDING_RATE // audio.SAMPLE_RATE, 1) * 32767
    pad = max(round(EMBEDDING_SECONDS * EMBEDDING_RATE) - len(samples), 0)
    before = round(pad * offset)
    return np.pad(samples, (before, pad - before)).astype(np.float32)


def mel_windows(samples: np.ndarray) -> np.ndarray:
    """(windows, 76, 32, 1): the mel model's frames of 16 kHz int16-scale samples (as openwakeword scales
    them: x / 10 + 2), in windows of EMBEDDING_WINDOW frames every EMBEDDING_STEP frames."""
    frames = embedding_models()[0].run(None, {"input": samples[None]})[0].reshape(-1, 32) / 10 + 2
    starts = range(0, len(frames) - EMBEDDING_WINDOW + 1, EMBEDDING_STEP)
    return np.stack([frames[i:i + EMBEDDING_WINDOW] for i in starts])[..., None].astype(np.float32)


def speech_embeddings(waveforms: list[np.ndarray], offsets: list[float] | None = None) -> list[np.ndarray]:
    """(windows, 96) embeddings of every 8 kHz waveform (embedding_input at offsets[i], default centred)."""
    windows = [mel_windows(embedding_input(w, 0.5 if offsets is None else offsets[i]))
               for i, w in enumerate(waveforms)]
    flat = np.concatenate(windows)
    embedded = np.concatenate([embedding_models()[1].run(None, {"input_1": flat[i:i + EMBEDDING_BATCH]})[0]
                               for i in range(0, len(flat), EMBEDDING_BATCH)])[:, 0, 0]
    return np.split(embedded, np.cumsum([len(w) for w in windows])[:-1])


def pooled(embeddings: list[np.ndarray]) -> np.ndarray:
    """(N, 3 * 96): mean, standard deviation and maximum of every recording's embeddings over its windows."""
    return np.stack([np.concatenate([e.mean(0), e.std(0), e.max(0)]) for e in embeddings])


def pooled_embeddings(waveforms: list[np.ndarray]) -> np.ndarray:
    """(N, 288): pooled speech embeddings of every waveform, centred in at least EMBEDDING_SECONDS."""
    return pooled(speech_embeddings(waveforms))


def embedding_features(waveforms: list[np.ndarray], chunk: int = 100) -> np.ndarray:
    """pooled_embeddings, in chunks of at most `chunk` waveforms spread over one thread per core (onnxruntime
    runs without the GIL): the same numbers (every window is embedded on its own), a fraction of the time."""
    cores = len(os.sched_getaffinity(0))
    size = max(1, min(chunk, -(-len(waveforms) // cores)))  # a few waveforms: one chunk per core all the same
    chunks = [waveforms[i:i + size] for i in range(0, len(waveforms), size)]
    with ThreadPoolExecutor(min(len(chunks), cores)) as pool:
        return np.concatenate(list(pool.map(pooled_embeddings, chunks)))


FRONT_ENDS = {"waveform": waveform_features, "mfcc": mfcc_features,  # (N, channels, length) from waveforms
              "embedding": embedding_features}  # (N, 3 x 96)


def network_input(features: str, cmvn: bool, waveforms: list[np.ndarray]) -> np.ndarray:
    """The FRONT_ENDS[features] input of waveforms as audio.read_audio returns them (8 kHz, any length);
    `cmvn`: every channel standardized over its frames."""
    x = FRONT_ENDS[features](waveforms)
    return standardize(x) if cmvn else x


# -----------------------------------------------------------------------------
# Segmentation: the spoken parts of a long recording (one digit each)

HOP = 80  # samples per 10 ms at 8 kHz


def frame_energy_db(waveform: np.ndarray) -> np.ndarray:
    """Energy in dB of every 10 ms hop (HOP samples at 8 kHz), smoothed over 3 hops."""
    hops = len(waveform) // HOP
    energy = np.square(waveform[:hops * HOP].reshape(hops, HOP)).mean(1)
    return 10 * np.log10(np.convolve(energy, np.ones(3) / 3, mode="same") + 1e-10)


def speech_segments(waveform: np.ndarray, min_gap: float = 0.2, min_length: float = 0.1,
                    margin: float = 0.05) -> list[tuple[int, int]]:
    """(start, end) samples of every spoken part of an 8 kHz waveform: a hop 5 dB over the noise floor (the
    10th percentile; at most halfway to the loudest hop, at least within 35 dB of it) starts a part, which
    lasts while its hops stay 2.5 dB over the floor (a quarter of the way, within 45 dB: hysteresis); parts
    closer than min_gap seconds are merged, shorter than min_length dropped, and margin seconds are added at
    both ends. Empty for silence or a recording without contrast."""
    db = frame_energy_db(waveform)
    if len(db) == 0:
        return []
    floor, peak = np.percentile(db, 10), db.max()
    contrast = peak - floor
    if contrast < 6:  # no hop stands out from the rest by 6 dB: nothing to segment
        return []
    high, low = max(floor + min(contrast / 2, 5), peak - 35), max(floor + min(contrast / 4, 2.5), peak - 45)
    parts, start = [], None
    for hop, level in enumerate(db):
        if start is None and level >= high:
            start = hop
            while start > 0 and db[start - 1] >= low:
                start -= 1
        elif start is not None and level < low:
            parts.append([start, hop])
            start = None
    if start is not None:
        parts.append([start, len(db)])
    merged = [parts[0]] if parts else []
    for part in parts[1:]:
        if (part[0] - merged[-1][1]) * HOP < min_gap * audio.SAMPLE_RATE:
            merged[-1][1] = part[1]
        else:
            merged.append(part)
    pad = round(margin * audio.SAMPLE_RATE)
    return [(max(a * HOP - pad, 0), min(b * HOP + pad, len(waveform))) for a, b in merged
            if (b - a) * HOP >= min_length * audio.SAMPLE_RATE]


def spoken_parts(waveform: np.ndarray) -> list[np.ndarray]:
    """The spoken parts of a recording (speech_segments), one digit each; the whole recording if none
    stands out from its background."""
    return [waveform[start:end] for start, end in speech_segments(waveform) or [(0, len(waveform))]]


# -----------------------------------------------------------------------------
# The network as numpy arrays

def _per_channel(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a (channels,) shaped to scale x (N, channels, ...) along its channels."""
    return a.reshape(-1, *[1] * (x.ndim - 2))


def conv_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Conv1d of x (N, in, T) with weight (out, in, k), stride 1, k // 2 zeros either side (odd k): (N, out, T)."""
    k = weight.shape[-1]
    padded = np.pad(x, [(0, 0), (0, 0), (k // 2, k // 2)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=2)  # (N, in, T, k)
    return np.einsum("nitk,oik->not", windows, weight, optimize=True) + bias[:, None]


def max_pool(x: np.ndarray, size: np.ndarray) -> np.ndarray:
    """MaxPool1d(size) of x (N, C, T): the maximum of every `size` frames, a remainder dropped."""
    k = int(size)
    t = x.shape[-1] // k
    return x[..., :t * k].reshape(*x.shape[:-1], t, k).max(-1)


LAYERS = {  # a layer kind (recognizer.export writes them) -> its output for x and the layer's arrays
    "flatten": lambda x: x.reshape(len(x), -1),
    "scale_shift": lambda x, scale, shift: x * _per_channel(scale, x) + _per_channel(shift, x),  # batch norm, eval
    "linear": lambda x, weight, bias: x @ weight.T + bias,  # weight (out, in), as torch stores it
    "relu": lambda x: np.maximum(x, 0),
    "conv_same": conv_same,
    "max_pool": max_pool,
    "mean_over_time": lambda x: x.mean(-1, keepdims=True),  # AdaptiveAvgPool1d(1)
}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of every row of logits."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@dataclass
class Network:
    """A trained network as numpy arrays: its front end (features, cmvn) and the layers of each member (one
    network, or the networks of an ensemble), each layer a LAYERS kind and its arrays."""
    features: str
    cmvn: bool
    members: list[list[tuple[str, list[np.ndarray]]]] = field(repr=False)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, 10): the members' class probabilities for every x[i], averaged (as recognizer.Ensemble)."""
        def member(layers):
            out = x
            for kind, arrays in layers:
                out = LAYERS[kind](out, *arrays)
            return softmax(out)
        return np.mean([member(layers) for layers in self.members], 0)


@dataclass
class Model:
    """The recognizer: networks, each on its own front end, whose log-probabilities are summed with weights
    (as recognizer.Combined); one network of weight 1 gives its own probabilities."""
    networks: list[Network]
    weights: list[float]

    def log_probabilities(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """(N, 10): the networks' log-probabilities of every waveform, summed with their weights (the log of
        the class probabilities, up to a constant per waveform)."""
        return sum(w * np.log(np.maximum(n.probabilities(network_input(n.features, n.cmvn, waveforms)), 1e-30))
                   for n, w in zip(self.networks, self.weights))

    def probabilities(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """(N, 10): the class probabilities of every waveform."""
        return softmax(self.log_probabilities(waveforms))


# -----------------------------------------------------------------------------
# The model file: the arrays and a header saying what they were trained with

FORMAT = 4  # version of the model file's layout; bump it when that changes
MODEL_FILE = "recognizer.npz"
SOURCES = ("reader.py", "recognizer.py")  # the code a model's recipe and front end are defined in


def source_digest() -> str:
    """sha256 of SOURCES: a saved model whose header holds it was checked against this very code."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def save_model(model: Model, header: dict, file: Path) -> None:
    """Write the model's arrays and `header` (with the model's layout) to `file` atomically (an .npz)."""
    layout = {"weights": model.weights,
              "networks": [{"features": n.features, "cmvn": n.cmvn,
                            "layers": [[[kind, len(arrays)] for kind, arrays in layers] for layers in n.members]}
                           for n in model.networks]}
    arrays = {f"{k}.{m}.{i}.{a}": array for k, n in enumerate(model.networks) for m, layers in enumerate(n.members)
              for i, (_, layer_arrays) in enumerate(layers) for a, array in enumerate(layer_arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps({**header, **layout})), **arrays)
    file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(file, buffer.getvalue())


def load_model(file: Path) -> tuple[Model, dict]:
    """The model saved in `file` and its header; any damage raises (an OSError, ValueError or KeyError...)."""
    with np.load(file, allow_pickle=False) as saved:
        header = json.loads(str(saved["header"]))
        networks = [Network(n["features"], n["cmvn"],
                            [[(kind, [saved[f"{k}.{m}.{i}.{a}"] for a in range(count)])
                              for i, (kind, count) in enumerate(layers)] for m, layers in enumerate(n["layers"])])
                    for k, n in enumerate(header["networks"])]
    kinds = [kind for n in networks for layers in n.members for kind, _ in layers]
    if any(kind not in LAYERS for kind in kinds) or any(n.features not in FRONT_ENDS for n in networks):
        raise ValueError(f"a layer or front end this code cannot run ({kinds}, {[n.features for n in networks]})")
    return Model(networks, [float(w) for w in header["weights"]]), header


def current_model(file: Path) -> Model | None:
    """The model in `file` if it was checked against this code (its header's format and source digest); None
    if it is missing, damaged or from other code (recognizer.recognizer then checks its recipe)."""
    try:
        model, header = load_model(file)
    except Exception:  # noqa: BLE001 - missing or damaged: recognizer.recognizer says which and trains anew
        return None
    return model if header.get("format") == FORMAT and header.get("source") == source_digest() else None


# -----------------------------------------------------------------------------
# Reading: the digits of recordings

SECOND_LOOK = 0.9  # a digit whose likeliest class has a lower probability is heard again at other SPEEDS
SPEEDS = ((10, 11), (10, 9))  # resample_poly's (up, down): played 1.1 and 0.9 times as fast


def second_look() -> dict:
    """How classify reads unsure digits, as the results files record it."""
    return {"below": SECOND_LOOK, "speeds": [round(down / up, 3) for up, down in SPEEDS]}


def classify(model: Model, waveforms: list[np.ndarray]) -> np.ndarray:
    """(N, 10): model's class probabilities of every waveform (one digit each); a waveform whose likeliest
    class has less than SECOND_LOOK is heard again at SPEEDS, its log-probabilities averaged over the speeds
    (a voice faster or slower than the training voices: chosen leaving one speaker out, README)."""
    log_p = model.log_probabilities(waveforms)
    unsure = np.flatnonzero(softmax(log_p).max(1) < SECOND_LOOK)
    if len(unsure):
        again = model.log_probabilities([resample_poly(waveforms[i], up, down).astype(np.float32)
                                         for up, down in SPEEDS for i in unsure])  # (speeds * unsure, 10)
        log_p[unsure] = (log_p[unsure] + again.reshape(len(SPEEDS), len(unsure), -1).sum(0)) / (1 + len(SPEEDS))
    return softmax(log_p)


def read_digits(model: Model, waveforms: list[np.ndarray]) -> list[tuple[list[int], float]]:
    """The digits spoken in every recording, one per spoken part (read_parts of spoken_parts)."""
    return read_parts(model, [spoken_parts(w) for w in waveforms])


def read_parts(model: Model, parts: list[list[np.ndarray]]) -> list[tuple[list[int], float]]:
    """The digits of every recording's parts (classify, one digit per part, in order) and the probability of
    that sequence: the product of the parts' highest class probabilities."""
    probabilities = classify(model, sum(parts, []))
    ends = np.cumsum([len(p) for p in parts])
    return [(probabilities[a:b].argmax(1).tolist(), float(probabilities[a:b].max(1).prod()))
            for a, b in zip(np.concatenate([[0], ends[:-1]]), ends)]


@dataclass
class Reading:
    """What one file says: its digits and their probability, or why it could not be read."""
    file: Path
    digits: str = ""
    probability: float = 0.0
    error: audio.RecordingError | None = None


def read_files(model: Model, files: list[Path]) -> list[Reading]:
    """The reading of every file, in order: the readable ones classified together (read_digits)."""
    readings, waveforms = [], []
    for file in files:
        try:
            waveforms.append(audio.read_audio(file))
            readings.append(Reading(file))
        except audio.RecordingError as err:
            readings.append(Reading(file, error=err))
    read = iter(read_digits(model, waveforms) if waveforms else [])
    for reading in readings:
        if reading.error is None:
            digits, reading.probability = next(read)
            reading.digits = "".join(map(str, digits))
    return readings
