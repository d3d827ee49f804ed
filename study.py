"""Beyond the assignment: how well do the networks recognize a speaker they never heard?

Leave-one-speaker-out, official-split and random-split evaluation of several recipes (front end,
network, augmentation) and of a pocketsphinx baseline, run by tools/speaker_independent.py and shown
in the notebook's appendix. tools/recognize.py trains RECOGNIZER on all recordings through
training_features and fit, finds the digits of a recording with speech_segments and classifies them
through recording_features and predict_proba. The notebook's own answers (its networks and datasets)
stay in the notebook; this study has its own. Recipes only screened on a few speakers are kept in the
results file (descriptions and numbers), not as code.
"""
from __future__ import annotations

import hashlib
import io
import importlib.util
import inspect
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
from python_speech_features import mfcc
from scipy.signal import lfilter, resample_poly
from torch import nn
from tqdm import tqdm

import helpers
from atomic import write_atomically

RESULTS_FILE = Path(__file__).parent / "results" / "speaker_independent.json"
RECORDINGS_FILE = RESULTS_FILE.parent / "recordings.json"  # tools/recordings.py: sequences, long recordings
SPLIT_SEED = 0  # the notebook's SEED, so the random 2/3 split is the one of 3.5
SIZE = 6000  # samples kept per recording (0.75 s at 8 kHz), as in the notebook


# -----------------------------------------------------------------------------
# Data: waveforms and MFCCs of every recording

def standardize(x: np.ndarray | torch.Tensor):
    """Every signal (last axis) to mean 0 and standard deviation 1."""
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-8)


def fixed_length(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The first `size` samples (last axis), zero-padded if shorter."""
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size)])[..., :size]


def mfcc_frames(waveform: np.ndarray) -> np.ndarray:
    """13 MFCCs per 10 ms frame of an 8 kHz waveform in [-1, 1]: shape (13, frames)."""
    return np.transpose(mfcc(waveform, helpers.SAMPLE_RATE)).astype(np.float32)


def waveform_features(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 1, SIZE): the first SIZE samples of every waveform, zero-padded and standardized."""
    return torch.from_numpy(standardize(np.stack([fixed_length(w) for w in waveforms]))).unsqueeze(1)


def mfcc_features(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 13, 74): MFCCs of the first SIZE samples of every waveform (zero-padded)."""
    return torch.from_numpy(np.stack([mfcc_frames(fixed_length(w)) for w in waveforms]))


def load_fsdd(data_dir: str | os.PathLike) -> dict:
    """Every recording in data_dir as read ("recordings": float32 arrays of any length), as standardized
    waveforms (N, 1, SIZE) and MFCCs (N, 13, 74), with digit labels, speakers and take indices,
    in sorted file order."""
    files = helpers.list_recordings(data_dir)
    parsed = [helpers.parse_file_name(f) for f in files]
    recordings = [helpers.read_wav(f) for f in files]
    return {"recordings": recordings, "waveform": waveform_features(recordings), "mfcc": mfcc_features(recordings),
            "y": torch.tensor([digit for digit, _, _ in parsed]),
            "speakers": [speaker for _, speaker, _ in parsed], "indices": [index for _, _, index in parsed]}


# -----------------------------------------------------------------------------
# Pretrained front end: Google's speech embedding (Lin et al. 2020, arXiv 2002.01322; Apache-2.0),
# the two ONNX files in openwakeword 0.5.1's wheel, run with onnxruntime (openwakeword's code is not used)

EMBEDDING_RATE = 16000  # Hz: the models' input, int16 scale
EMBEDDING_WINDOW, EMBEDDING_STEP = 76, 2  # mel frames (10 ms each) per embedding; frames between embeddings
EMBEDDING_SECONDS = 1.0  # every clip is centred in at least this much silence
EMBEDDING_SIZE = 96
EMBEDDING_BATCH = 512  # windows per call of the embedding model


@cache
def embedding_models() -> tuple:
    """The mel-spectrogram and embedding ONNX sessions (one thread each), from openwakeword's package folder."""
    import onnxruntime  # imported here: only the embedding recipes need it
    spec = importlib.util.find_spec("openwakeword")  # finds the package without running its __init__
    if spec is None:
        raise helpers.FSDDError("openwakeword is not installed: run "
                                "`.venv/bin/pip install --no-deps -r requirements-nodeps.txt`")
    folder = Path(spec.submodule_search_locations[0]) / "resources" / "models"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return tuple(onnxruntime.InferenceSession(folder / name, options, providers=["CPUExecutionProvider"])
                 for name in ("melspectrogram.onnx", "embedding_model.onnx"))


def embedding_input(waveform: np.ndarray, offset: float = 0.5) -> np.ndarray:
    """An 8 kHz waveform in [-1, 1] as the models' input: upsampled to 16 kHz, int16 scale, placed at `offset`
    (0: start, 0.5: centred, 1: end) of at least EMBEDDING_SECONDS of digital silence."""
    audio = resample_poly(waveform, EMBEDDING_RATE // helpers.SAMPLE_RATE, 1) * 32767
    pad = max(round(EMBEDDING_SECONDS * EMBEDDING_RATE) - len(audio), 0)
    before = round(pad * offset)
    return np.pad(audio, (before, pad - before)).astype(np.float32)


def mel_windows(audio: np.ndarray) -> np.ndarray:
    """(windows, 76, 32, 1): the mel model's frames of 16 kHz int16-scale audio (as openwakeword scales
    them: x / 10 + 2), in windows of EMBEDDING_WINDOW frames every EMBEDDING_STEP frames."""
    frames = embedding_models()[0].run(None, {"input": audio[None]})[0].reshape(-1, 32) / 10 + 2
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


def pooled(embeddings: list[np.ndarray]) -> torch.Tensor:
    """(N, 3 * 96): mean, standard deviation and maximum of every recording's embeddings over its windows."""
    return torch.from_numpy(np.stack([np.concatenate([e.mean(0), e.std(0), e.max(0)]) for e in embeddings]))


def embedding_features(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 288): pooled speech embeddings of every waveform, centred in at least EMBEDDING_SECONDS."""
    return pooled(speech_embeddings(waveforms))


def perturb_voice(waveform: np.ndarray, rng: np.random.Generator, speed: float = 0.15, tilt: float = 0.7,
                  reverb: tuple[float, float] = (0.0, 0.4), snr_db: tuple[float, float] = (10, 40),
                  gain_db: tuple[float, float] = (-20, 6), silence: float = 0.3) -> np.ndarray:
    """The recording as if another voice said it at another pace, into another microphone in another room:
    played 1 +- speed times as fast (pitch, formants and tempo together), tilted in spectrum (first-order
    filter 1 + a z^-1, |a| <= tilt), with a share of reverberation (an exponentially decaying noise
    response of 20-100 ms), white noise at snr_db, scaled by gain_db, and up to `silence` seconds of digital
    silence split randomly before and after it (uniform draws)."""
    factor = rng.uniform(1 - speed, 1 + speed)
    x = np.interp(np.arange(0, len(waveform) - 1, factor), np.arange(len(waveform)), waveform)
    x = lfilter([1, rng.uniform(-tilt, tilt)], [1], x)
    t = np.arange(round(0.3 * helpers.SAMPLE_RATE)) / helpers.SAMPLE_RATE
    response = rng.standard_normal(len(t)) * np.exp(-t / rng.uniform(0.02, 0.1))
    wet = np.convolve(x, response)[:len(x)]
    x = x + rng.uniform(*reverb) * wet * x.std() / (wet.std() + 1e-8)
    x = x + rng.standard_normal(len(x)) * x.std() * 10 ** (-rng.uniform(*snr_db) / 20)
    x = np.clip(x / (np.abs(x).max() + 1e-8) * np.abs(waveform).max() * 10 ** (rng.uniform(*gain_db) / 20), -1, 1)
    pad = round(rng.uniform(0, silence) * helpers.SAMPLE_RATE)
    before = rng.integers(0, pad + 1)
    return np.pad(x, (before, pad - before)).astype(np.float32)


# -----------------------------------------------------------------------------
# Recordings as people make them: the spoken parts of a long recording (one digit each)

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
        if (part[0] - merged[-1][1]) * HOP < min_gap * helpers.SAMPLE_RATE:
            merged[-1][1] = part[1]
        else:
            merged.append(part)
    pad = round(margin * helpers.SAMPLE_RATE)
    return [(max(a * HOP - pad, 0), min(b * HOP + pad, len(waveform))) for a, b in merged
            if (b - a) * HOP >= min_length * helpers.SAMPLE_RATE]


def spoken_parts(waveform: np.ndarray) -> list[np.ndarray]:
    """The spoken parts of a recording (speech_segments), one digit each; the whole recording if none
    stands out from its background."""
    return [waveform[start:end] for start, end in speech_segments(waveform) or [(0, len(waveform))]]


def assemble(clips: list[np.ndarray], rng: np.random.Generator, pause: tuple[float, float] = (0.3, 0.7),
             lead: tuple[float, float] = (0.5, 3.0), snr_db: tuple[float, float] = (10, 30)) -> np.ndarray:
    """One recording as people make them: the clips in order, each as loud as the others (mean power -20 dB
    of full scale, +-3 dB), with pauses of `pause` seconds between them and `lead` seconds before the first
    and after the last, all under white noise snr_db below the clips' mean power (uniform draws)."""
    clips = [c / np.sqrt(np.square(c).mean() + 1e-12) * 10 ** ((rng.uniform(-3, 3) - 20) / 20) for c in clips]
    gaps = [rng.uniform(*lead), *(rng.uniform(*pause) for _ in clips[1:]), rng.uniform(*lead)]
    silences = [np.zeros(round(g * helpers.SAMPLE_RATE), np.float32) for g in gaps]
    x = np.concatenate([silences[0], *(part for clip, silence in zip(clips, silences[1:]) for part in (clip, silence))])
    power = np.square(np.concatenate(clips)).mean()
    noise = rng.standard_normal(len(x)) * np.sqrt(power * 10 ** (-rng.uniform(*snr_db) / 10))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def read_digits(net: nn.Module, recipe: Recipe, waveforms: list[np.ndarray]) -> list[tuple[list[int], float]]:
    """The digits spoken in every recording (one per spoken part, in order) and the probability of that
    sequence: the product of the parts' highest class probabilities."""
    parts = [spoken_parts(w) for w in waveforms]
    counts = [len(p) for p in parts]
    probability, digit = predict_proba(net, recording_features(recipe, sum(parts, []))).max(1)
    return [(d.tolist(), p.prod().item()) for d, p in zip(digit.split(counts), probability.split(counts))]


# -----------------------------------------------------------------------------
# Splits, augmentations, networks, recipes

def speaker_folds(speakers: list[str]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Leave-one-speaker-out: (held-out speaker, train indices, test indices) per speaker, sorted."""
    speakers = np.asarray(speakers)
    return [(s, torch.from_numpy(np.flatnonzero(speakers != s)), torch.from_numpy(np.flatnonzero(speakers == s)))
            for s in sorted(set(speakers))]


def official_split(indices: list[int], takes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """FSDD's own split: takes 0..takes-1 of every speaker and digit are the test set, the rest train."""
    indices = torch.as_tensor(indices)
    return torch.nonzero(indices >= takes).squeeze(1), torch.nonzero(indices < takes).squeeze(1)


def utterance_cmvn(x: torch.Tensor) -> torch.Tensor:
    """Per-utterance cepstral mean and variance normalization: every channel of every x[i] to mean 0, std 1."""
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)


def speed_perturb(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Play each signal x[i] (channels, length) factors[i] times faster (linear interpolation), zero-filled."""
    length = x.shape[-1]
    source = torch.arange(length) * factors[:, None]  # (N, length): where each output sample comes from
    left = source.floor().long().clamp(max=length - 2)
    frac = (source - left)[:, None, :]

    def take(index: torch.Tensor) -> torch.Tensor:
        return x.gather(-1, index[:, None, :].expand(-1, x.shape[1], -1))
    return (take(left) * (1 - frac) + take(left + 1) * frac) * (source <= length - 1)[:, None, :]


def add_noise(x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Add white noise to each signal x[i] at a signal-to-noise ratio of snr_db[i] decibels."""
    scale = x.std(-1, keepdim=True) * 10 ** (-snr_db[:, None, None] / 20)
    return x + torch.randn_like(x) * scale


def mask_band(x: torch.Tensor, max_width: int, dim: int) -> torch.Tensor:
    """SpecAugment-style: zero one random band of up to `max_width` rows (dim=1) or frames (dim=2) per x[i]."""
    n, size = x.shape[0], x.shape[dim]
    width = torch.randint(0, max_width + 1, (n, 1))
    start = (torch.rand(n, 1) * (size - width + 1)).long()
    position = torch.arange(size)
    keep = (position < start) | (position >= start + width)  # (N, size)
    return x * (keep[:, :, None] if dim == 1 else keep[:, None, :])


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, **options) -> list[nn.Module]:
    """Convolution, batch norm and ReLU: the building block of the networks below."""
    return [nn.Conv1d(in_channels, out_channels, kernel_size, **options), nn.BatchNorm1d(out_channels), nn.ReLU()]


def build_net_waveform(channels: int = 64) -> nn.Sequential:
    """M5 (Dai et al. 2017) for 1 x 6000 raw samples: a wide strided convolution (80 samples = 10 ms,
    stride 4), then 3-tap convolutions with max pooling, global average pooling and a linear layer."""
    return nn.Sequential(
        *conv_bn_relu(1, channels, 80, stride=4), nn.MaxPool1d(4),
        *conv_bn_relu(channels, channels), nn.MaxPool1d(4),
        *conv_bn_relu(channels, 2 * channels), nn.MaxPool1d(4),
        *conv_bn_relu(2 * channels, 2 * channels),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2 * channels, 10))


class Square(nn.Module):
    """x * x: the energy of a filter's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class LogEnergy(nn.Module):
    """log(x + eps): the compression of a filterbank's energies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x + 1e-4)


def gap_head(in_channels: int, channels: int = 32) -> list[nn.Module]:
    """Five 3-tap conv blocks over frames (two max pools), global average pooling, a linear layer."""
    return [*conv_bn_relu(in_channels, channels, padding=1), *conv_bn_relu(channels, channels, padding=1),
            nn.MaxPool1d(2),
            *conv_bn_relu(channels, 2 * channels, padding=1), *conv_bn_relu(2 * channels, 2 * channels, padding=1),
            nn.MaxPool1d(2),
            *conv_bn_relu(2 * channels, 4 * channels, padding=1),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4 * channels, 10)]


def build_net_mfcc_gap(channels: int = 32) -> nn.Sequential:
    """For 13 x 74 MFCCs: gap_head, which is blind to where in time the digit is spoken."""
    return nn.Sequential(*gap_head(13, channels))


def build_net_filterbank(filters: int = 40, channels: int = 32) -> nn.Sequential:
    """For 1 x 6000 raw samples: a learned filterbank (101-tap convolution, squared, averaged over
    10 ms frames, log, normalized per utterance like CMVN), then gap_head over the 75 frames."""
    return nn.Sequential(
        nn.Conv1d(1, filters, 101, stride=4, padding=50, bias=False), Square(), nn.AvgPool1d(20),
        LogEnergy(), nn.InstanceNorm1d(filters), *gap_head(filters, channels))


def build_net_embedding_head(hidden: int = 256, dropout: float = 0.3) -> nn.Sequential:
    """For pooled speech embeddings (3 x 96): batch norm as a learned standardization, a hidden layer
    with dropout before and after it, 10 logits."""
    return nn.Sequential(nn.BatchNorm1d(3 * EMBEDDING_SIZE), nn.Dropout(dropout), nn.Linear(3 * EMBEDDING_SIZE, hidden),
                         nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))


@dataclass(frozen=True)
class Recipe:
    """One model of the speaker-independent study: its input, network, training and augmentation."""
    about: str  # one line for the notebook's tables
    features: str  # a FRONT_ENDS key: 'waveform' (1 x 6000), 'mfcc' (13 x 74), 'embedding' (3 x 96)
    build: Callable[[], nn.Module]
    epochs: int
    lr: float  # peak of the one-cycle schedule (AdamW)
    batch_size: int = 32
    cmvn: bool = False  # per-utterance MFCC mean/variance normalization
    max_shift: int = 0  # random shift either way (BatchLoader's), samples or frames
    max_delay: int = 0  # random delay (shift right only: keeps the onset), samples or frames
    speed: float = 0.0  # random speed factor in [1 - speed, 1 + speed] (waveforms; frames: tempo only)
    snr_db: tuple[float, float] | None = None  # random white noise (waveforms)
    masks: tuple[int, int] = (0, 0)  # widest masked band of feature channels and of frames
    members: int = 1  # networks trained from different seeds, their probabilities averaged
    copies: int = 0  # perturb_voice copies of every training recording (training_features); one drawn per batch


class AugmentedLoader(helpers.BatchLoader):
    """A shuffling BatchLoader that perturbs every training batch as its recipe says."""

    def __init__(self, data: torch.utils.data.Dataset, batch_size: int, recipe: Recipe):
        super().__init__(data, batch_size, shuffle=True, max_shift=recipe.max_shift)
        self.recipe = recipe

    def __iter__(self):
        r = self.recipe
        for X, y in super().__iter__():
            if r.copies:  # X: (N, 1 + copies, ...): the recording or one of its copies
                X = X[torch.arange(len(X)), torch.randint(0, r.copies + 1, (len(X),))]
            if r.max_delay:
                X = helpers.time_shift(X, torch.randint(0, r.max_delay + 1, (len(X),)))
            if r.speed:
                X = speed_perturb(X, 1 + r.speed * (2 * torch.rand(len(X)) - 1))
            if r.snr_db:
                X = add_noise(X, torch.empty(len(X)).uniform_(*r.snr_db))
            if r.features == "waveform" and (r.speed or r.snr_db):
                X = standardize(X)
            if r.masks[0]:
                X = mask_band(X, r.masks[0], dim=1)
            if r.masks[1]:
                X = mask_band(X, r.masks[1], dim=2)
            yield X, y

    def unaugmented(self) -> helpers.BatchLoader:
        """The recordings themselves (without their copies: (N, ...) as the network takes them), in order."""
        x = self.x[:, 0] if self.recipe.copies else self.x
        return helpers.BatchLoader(torch.utils.data.TensorDataset(x, self.y), batch_size=256)


# -----------------------------------------------------------------------------
# Training and prediction (the interface of tools/recognize.py: recording_features, fit, predict_proba)

FRONT_ENDS = {"waveform": waveform_features, "mfcc": mfcc_features,  # (N, channels, length) from waveforms
              "embedding": embedding_features}  # (N, 3 x 96)


FRONT_END_CODE = {"embedding": (embedding_models, embedding_input, mel_windows, speech_embeddings, pooled)}
CACHE_DIR = Path(__file__).parent / "models"  # training_features' cache (ignored by git)


def recording_features(recipe: Recipe, waveforms: list[np.ndarray]) -> torch.Tensor:
    """recipe's network input for waveforms as helpers.read_wav returns them (8 kHz, any length)."""
    x = FRONT_ENDS[recipe.features](waveforms)
    return utterance_cmvn(x) if recipe.cmvn else x


def save_atomic(value: object, file: Path) -> None:
    """torch.save to `file` atomically (atomic.write_atomically): never a half-written file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(value, buffer)
    write_atomically(file, buffer.getvalue())


def front_end_source(recipe: Recipe) -> str:
    """The source of the functions that turn waveforms into recipe's training and network input."""
    functions = (recording_features, training_features, perturb_voice, FRONT_ENDS[recipe.features],
                 *FRONT_END_CODE.get(recipe.features, ()))
    return "\n".join(inspect.getsource(f) for f in functions)


def training_features(recipe: Recipe, waveforms: list[np.ndarray], cache_dir: Path | None = CACHE_DIR,
                      seed: int = 0) -> torch.Tensor:
    """recording_features; with recipe.copies, (N, 1 + copies, ...): every recording and its perturb_voice
    copies (seeded), kept in cache_dir under a fingerprint of the waveforms, the recipe's front end and code."""
    if not recipe.copies:
        return recording_features(recipe, waveforms)
    digest = hashlib.sha256(f"{recipe.features} {recipe.cmvn} {recipe.copies} {seed}\n{front_end_source(recipe)}".encode())
    for w in waveforms:
        digest.update(np.ascontiguousarray(w, np.float32).tobytes())
    file = cache_dir / f"features-{digest.hexdigest()[:16]}.pt" if cache_dir else None
    if file and file.exists():
        return torch.load(file)
    rng = np.random.default_rng(seed)
    x = torch.stack([recording_features(recipe, waveforms)] + [
        recording_features(recipe, [perturb_voice(w, rng) for w in waveforms]) for _ in range(recipe.copies)], 1)
    if file:
        save_atomic(x, file)
    return x


class Ensemble(nn.Module):
    """Networks trained from different seeds: the log of their mean class probabilities."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).softmax(1) for member in self.members]).mean(0).log()


def train_network(recipe: Recipe, loader: AugmentedLoader) -> nn.Module:
    """A new recipe.build() trained on loader's batches by helpers.train (AdamW, one-cycle schedule, float32 on
    the CPU), in eval mode."""
    net = recipe.build()
    helpers.train(net, loader, None, recipe.epochs, recipe.lr, torch.device("cpu"), optimizer="adamw",
                  schedule="onecycle", bf16=False, animate=False)
    return net.eval()


def fit(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, seed: int = 0, progress: bool = False) -> nn.Module:
    """recipe's network trained on all of x, y from seed `seed` (with recipe.members > 1: an Ensemble of
    networks from seeds seed * members, seed * members + 1, ...), in eval mode."""
    loader = AugmentedLoader(torch.utils.data.TensorDataset(x, y), recipe.batch_size, recipe)
    nets = []
    for member in tqdm(range(recipe.members), unit="network", disable=not progress):
        torch.manual_seed(seed * recipe.members + member)
        nets.append(train_network(recipe, loader))
    return nets[0] if recipe.members == 1 else Ensemble(nets).eval()


def predict_proba(net: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 10): net's class probabilities for every x[i]."""
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(X).softmax(1) for X in x.split(batch_size)])


def fit_predict(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor,
                test_idx: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Train recipe's network on x[train_idx] from seed `seed`; its predicted digits for x[test_idx]
    (recordings only, without their copies)."""
    net = fit(recipe, x[train_idx], y[train_idx], seed)
    return predict_proba(net, x[test_idx, 0] if recipe.copies else x[test_idx]).argmax(1)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """counts[i, j]: how many samples of class i were predicted as class j."""
    return torch.bincount(y_true * classes + y_pred, minlength=classes * classes).view(classes, classes)




def accuracy_of(y_pred: torch.Tensor, y_true: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    return (y_pred == y_true).float().mean().item()


def random_split_indices(n: int, train_count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (train, test) indices that random_split(data, [train_count, n - train_count]) draws with `seed`."""
    train, test = torch.utils.data.random_split(range(n), [train_count, n - train_count],
                                                generator=torch.Generator().manual_seed(seed))
    return torch.tensor(train.indices), torch.tensor(test.indices)


def evaluate_recipe(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, speakers: list[str], indices: list[int],
                    split_seed: int, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Leave-one-speaker-out accuracies (and pooled confusion matrix), the official-split accuracy and
    the random 2/3-split accuracies (one split, one training run per seed) of one recipe."""
    start, loso, counts = time.perf_counter(), {}, torch.zeros(10, 10, dtype=torch.long)
    for speaker, train_idx, test_idx in speaker_folds(speakers):
        y_pred = fit_predict(recipe, x, y, train_idx, test_idx)
        loso[speaker] = accuracy_of(y_pred, y[test_idx])
        counts += confusion_matrix(y[test_idx], y_pred)
    train_idx, test_idx = official_split(indices)
    official = accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx), y[test_idx])
    train_idx, test_idx = random_split_indices(len(y), round(len(y) * 2 / 3), split_seed)
    random = [accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx, seed), y[test_idx]) for seed in seeds]
    return {"loso": {s: round(acc, 4) for s, acc in loso.items()}, "loso_mean": round(np.mean(list(loso.values())), 4),
            "loso_worst": round(min(loso.values()), 4), "official": round(official, 4),
            "random": [round(acc, 4) for acc in random],
            "confusion": counts.tolist(), "seconds": round(time.perf_counter() - start)}


MFCC_CMVN = Recipe("build_net_mfcc_gap, per-utterance CMVN, delay <= 10 frames, SpecAugment masks", "mfcc",
                   build_net_mfcc_gap, epochs=30, lr=1e-3, cmvn=True, max_delay=10, masks=(2, 9))
WAVEFORM = Recipe("build_net_waveform (M5, 64 channels), delay <= 1500 samples, speed 0.85-1.15, noise 10-40 dB",
                  "waveform", build_net_waveform, epochs=30, lr=3e-3, max_delay=1500, speed=0.15, snr_db=(10, 40))

RECIPES = {  # evaluated in full (evaluate_recipe)
    "mfcc_cmvn": MFCC_CMVN,
    "mfcc_cmvn_x3": replace(MFCC_CMVN, about="mfcc_cmvn, an ensemble of 3 networks (seeds), probabilities averaged",
                            members=3),
    "waveform": WAVEFORM,
    "filterbank": replace(WAVEFORM, about="build_net_filterbank (learned log filterbank), augmented as waveform",
                          build=build_net_filterbank, epochs=25),
    "embedding": Recipe("build_net_embedding_head on Google's speech embedding (pretrained on far more speakers, "
                        "frozen; mean, std and max of its 96 values every 20 ms), 8 perturb_voice copies of every "
                        "recording (speed 0.85-1.15, spectral tilt, reverberation, noise 10-40 dB, gain, timing), "
                        "an ensemble of 5", "embedding", build_net_embedding_head, epochs=30, lr=3e-3, batch_size=64,
                        members=5, copies=8),
}

RECOGNIZER = "embedding"  # the recipe tools/recognize.py trains on all 3,000 recordings


# -----------------------------------------------------------------------------
# Baseline: pocketsphinx (no training), restricted to the ten digit words

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPHINX_RATE = 16000  # Hz; the sample rate of pocketsphinx's default US-English acoustic model
SPHINX_PAD = 0.3  # seconds of silence added before and after every recording
SPHINX_GRAMMAR = ("#JSGF V1.0;\ngrammar digits;\n"
                  f"public <digit> = {' | '.join(DIGIT_WORDS)};\n")
SPHINX_CONFIG = (f"pocketsphinx {{version}}, default US-English model (en-us, cmudict-en-us.dict), no language "
                 f"model; JSGF grammar of exactly one word of {', '.join(DIGIT_WORDS)}, with the optional "
                 f"silence and fillers around it that pocketsphinx's grammar search adds (fsgusefiller); "
                 f"recordings upsampled 8 -> 16 kHz (scipy resample_poly) and padded with {SPHINX_PAD} s of "
                 f"digital silence at both ends; no hypothesis counts as an error")


def sphinx_decoder():
    """A pocketsphinx decoder that hears exactly one digit word (imported here: an optional dependency)."""
    from pocketsphinx import Decoder
    decoder = Decoder(samprate=SPHINX_RATE, lm=None, loglevel="FATAL")
    decoder.add_jsgf_string("digits", SPHINX_GRAMMAR)
    decoder.activate_search("digits")
    return decoder


def sphinx_digit(decoder, waveform: np.ndarray) -> int:
    """The digit pocketsphinx hears in an 8 kHz waveform in [-1, 1], or -1 if it hears none."""
    pad = np.zeros(round(SPHINX_PAD * SPHINX_RATE), np.float32)
    audio = np.concatenate([pad, resample_poly(waveform, SPHINX_RATE // helpers.SAMPLE_RATE, 1), pad])
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return DIGIT_WORDS.index(hypothesis.hypstr) if hypothesis and hypothesis.hypstr in DIGIT_WORDS else -1


def evaluate_sphinx(data: dict) -> dict:
    """The pocketsphinx baseline on load_fsdd's data: accuracy on every speaker's recordings (it needs no
    training, so that is its leave-one-speaker-out accuracy), on the official and the random-split test sets."""
    from importlib.metadata import version
    start, decoder = time.perf_counter(), sphinx_decoder()
    y_pred = torch.tensor([sphinx_digit(decoder, w) for w in data["recordings"]])
    y = data["y"]
    loso = {s: round(accuracy_of(y_pred[test], y[test]), 4) for s, _, test in speaker_folds(data["speakers"])}
    _, official = official_split(data["indices"])
    _, random = random_split_indices(len(y), round(len(y) * 2 / 3), SPLIT_SEED)
    return {"config": SPHINX_CONFIG.format(version=version("pocketsphinx")), "loso": loso,
            "loso_mean": round(np.mean(list(loso.values())), 4), "loso_worst": min(loso.values()),
            "official": round(accuracy_of(y_pred[official], y[official]), 4),
            "random": [round(accuracy_of(y_pred[random], y[random]), 4)],
            "confusion": confusion_matrix(y, y_pred.clamp(min=0), classes=10).tolist(),
            "unrecognized": int((y_pred < 0).sum()), "seconds": round(time.perf_counter() - start)}


def speaker_independent_study(data_dir: str | os.PathLike, names: list[str]) -> dict:
    """evaluate_recipe for each named recipe in RECIPES, on its training_features of the recordings in data_dir."""
    data = load_fsdd(data_dir)
    return {name: evaluate_recipe(RECIPES[name], training_features(RECIPES[name], data["recordings"]), data["y"],
                                  data["speakers"], data["indices"], SPLIT_SEED) for name in names}


def write_results(results: dict, file: Path = RESULTS_FILE) -> None:
    """Write the results file atomically: a killed run never leaves a broken file."""
    file.parent.mkdir(exist_ok=True)
    write_atomically(file, json.dumps(results, indent=1) + "\n")


def read_results(file: Path = RESULTS_FILE) -> dict:
    """The results file, or an empty one."""
    return json.loads(file.read_text()) if file.exists() else {"recipes": {}}


def update_results(data_dir: str | os.PathLike, names: list[str], file: Path = RESULTS_FILE) -> dict:
    """Run speaker_independent_study for the named recipes one by one, merging each into `file`
    (written after every recipe, so an interrupted run keeps what it finished); returns the results."""
    results = read_results(file)
    for name in names:
        results["recipes"].update(speaker_independent_study(data_dir, [name]))
        print(f"{name}: {results['recipes'][name]['seconds']:.0f} s", flush=True)
        results["recipes"] = {n: results["recipes"][n] for n in RECIPES if n in results["recipes"]}
        results["seconds"] = sum(r["seconds"] for r in results["recipes"].values())
        write_results(results, file)
    return results


def update_baseline(data_dir: str | os.PathLike, file: Path = RESULTS_FILE) -> dict:
    """Run evaluate_sphinx on the recordings in data_dir and store it in `file` as baselines/pocketsphinx."""
    results = read_results(file)
    results.setdefault("baselines", {})["pocketsphinx"] = evaluate_sphinx(load_fsdd(data_dir))
    write_results(results, file)
    return results


def update_screening(data_dir: str | os.PathLike, name: str, speakers: list[str],
                     file: Path = RESULTS_FILE) -> dict:
    """Leave-one-speaker-out accuracy of recipe `name` (in RECIPES) on the named held-out speakers
    only, merged into `file` under screening/name."""
    recipe, data, results = RECIPES[name], load_fsdd(data_dir), read_results(file)
    x, y, start = training_features(recipe, data["recordings"]), data["y"], time.perf_counter()
    entry = results.setdefault("screening", {}).setdefault(name, {"about": recipe.about, "loso": {}})
    for speaker, train_idx, test_idx in speaker_folds(data["speakers"]):
        if speaker in speakers:
            entry["loso"][speaker] = round(accuracy_of(fit_predict(recipe, x, y, train_idx, test_idx), y[test_idx]), 4)
            print(f"{name}, {speaker} held out: {entry['loso'][speaker]:.3f}", flush=True)
    entry["seconds per fold"] = round((time.perf_counter() - start) / len(speakers))
    write_results(results, file)
    return results


def random_split_cell(accuracies: list[float]) -> str:
    """Mean ± std of several random-split accuracies; a single one as it is."""
    if len(accuracies) == 1:
        return f"{accuracies[0]:.3f}"
    return f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}"


def speaker_independent_tables(results: dict) -> tuple[list[dict], list[dict]]:
    """Rows for the notebook from the results file: one per recipe and baseline (random split, official
    split, leave-one-speaker-out mean and worst speaker) and one per held-out speaker (every accuracy)."""
    models = {**results["recipes"], **results.get("baselines", {})}
    summary = [{"recipe": name, "random 2/3 split (3 seeds)": random_split_cell(r["random"]),
                "official split": r["official"], "leave one speaker out": r["loso_mean"],
                "worst speaker": min(r["loso"].values())}
               for name, r in models.items()]
    speakers = next(iter(models.values()))["loso"]
    per_speaker = [{"held-out speaker": s, **{name: r["loso"][s] for name, r in models.items()}} for s in speakers]
    return summary, per_speaker
