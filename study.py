"""Beyond the assignment: how well do the networks recognize a speaker they never heard?

Leave-one-speaker-out, official-split and random-split evaluation of several recipes (front end,
network, augmentation) and of a pocketsphinx baseline, run by tools/speaker_independent.py and shown
in the notebook's appendix. tools/recognize.py trains RECOGNIZER on all recordings through
recording_features, fit and predict_proba. The notebook's own answers (its networks and datasets)
stay in the notebook; this study has its own.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from python_speech_features import get_filterbanks, mfcc
from python_speech_features.base import hz2mel, mel2hz
from scipy.signal import resample_poly
from torch import nn
from tqdm import tqdm

import helpers

RESULTS_FILE = Path(__file__).parent / "results" / "speaker_independent.json"
RUN_STUDY = os.environ.get("A3_STUDY", "0") == "1"  # the notebook reruns the whole study (update_results)
SPLIT_SEED = 0  # the notebook's SEED, so the random 2/3 split is the one of 3.5
SIZE = 6000  # samples kept per recording (0.75 s at 8 kHz), as in the notebook


# -----------------------------------------------------------------------------
# Data: waveforms and MFCCs of every recording

def standardize(x: np.ndarray | torch.Tensor):
    """Every signal (last axis) to mean 0 and standard deviation 1."""
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-8)


def at_least(waveform: np.ndarray, size: int) -> np.ndarray:
    """The waveform, zero-padded to `size` samples if shorter."""
    return np.pad(waveform, (0, max(size - len(waveform), 0)))


def fixed_length(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The first `size` samples (last axis), zero-padded if shorter."""
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size)])[..., :size]


MFCC_BANDS = 26  # python_speech_features' mel filterbank (0-4 kHz)
MFCC_POINTS = np.linspace(hz2mel(0), hz2mel(helpers.SAMPLE_RATE / 2), MFCC_BANDS + 2)  # edges, centres (mel)


def mfcc_frames(waveform: np.ndarray) -> np.ndarray:
    """13 MFCCs per 10 ms frame of an 8 kHz waveform in [-1, 1]: shape (13, frames)."""
    return np.transpose(mfcc(waveform, helpers.SAMPLE_RATE)).astype(np.float32)


def waveform_features(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 1, SIZE): the first SIZE samples of every waveform, zero-padded and standardized."""
    return torch.from_numpy(standardize(np.stack([fixed_length(w) for w in waveforms]))).unsqueeze(1)


def mfcc_features(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 13, 74): MFCCs of the first SIZE samples of every waveform (zero-padded)."""
    return torch.from_numpy(np.stack([mfcc_frames(fixed_length(w)) for w in waveforms]))


def speech_mfcc_features(waveforms: list[np.ndarray], frames: int = 74) -> torch.Tensor:
    """(N, 13, frames): MFCCs of every silence-trimmed waveform with CMVN over its own frames only,
    then zero-padded (0 is every coefficient's mean) or cut to `frames`."""
    return torch.stack([torch.from_numpy(fixed_length(utterance_cmvn(torch.from_numpy(mfcc_frames(
        at_least(trim_silence(w), 280)))).numpy(), frames)) for w in waveforms])  # 280 samples: 2 frames


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
# Log-mel front end: silence trimmed, MELS bands per 10 ms frame, normalized per utterance

WINDOW, HOP, NFFT = 200, 80, 256  # 25 ms windows every 10 ms at 8 kHz
MELS = 40
FRAMES = 100  # 1 s kept after trimming (longer recordings are cut)
STRETCHED_FRAMES = 50  # every trimmed recording stretched to this many frames
MEL_POINTS = np.linspace(hz2mel(0), hz2mel(helpers.SAMPLE_RATE / 2), MELS + 2)  # band edges and centres (mel)


def trim_silence(waveform: np.ndarray, threshold_db: float = 35.0, margin: int = 2) -> np.ndarray:
    """The waveform from `margin` 10 ms hops before its first to `margin` hops after its last hop
    whose energy is within threshold_db of the loudest hop's."""
    hops = len(waveform) // HOP
    energy = np.square(waveform[:hops * HOP].reshape(hops, HOP)).mean(1)
    if hops == 0 or energy.max() == 0:
        return waveform
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-threshold_db / 10))
    return waveform[max(loud[0] - margin, 0) * HOP:(loud[-1] + 1 + margin) * HOP]


def log_mel(waveform: np.ndarray) -> torch.Tensor:
    """(MELS, frames): log energies of MELS mel bands (0-4 kHz) in 25 ms Hann windows every 10 ms."""
    samples = torch.from_numpy(at_least(waveform, NFFT + HOP))  # 2 frames
    spectrum = torch.stft(samples, NFFT, HOP, WINDOW, torch.hann_window(WINDOW), center=False,
                          return_complex=True).abs().square()  # (NFFT // 2 + 1, frames)
    filters = torch.from_numpy(get_filterbanks(MELS, NFFT, helpers.SAMPLE_RATE)).float()  # (MELS, NFFT // 2 + 1)
    return torch.log(filters @ spectrum + 1e-8)


def logmel_features(waveforms: list[np.ndarray], frames: int = FRAMES) -> torch.Tensor:
    """(N, MELS, frames): log-mel of every silence-trimmed waveform with per-utterance CMVN,
    zero-padded (0 is every band's mean) or cut to `frames`."""
    return torch.stack([torch.from_numpy(fixed_length(utterance_cmvn(log_mel(trim_silence(w))).numpy(), frames))
                        for w in waveforms])


def stretched_logmel_features(waveforms: list[np.ndarray], frames: int = STRETCHED_FRAMES) -> torch.Tensor:
    """(N, MELS, frames): log-mel of every silence-trimmed waveform with per-utterance CMVN, stretched or
    squeezed in time (linear interpolation) to `frames`: every digit lasts as long, however fast it was said."""
    return torch.stack([nn.functional.interpolate(utterance_cmvn(log_mel(trim_silence(w)))[None], frames,
                                                  mode="linear", align_corners=True)[0] for w in waveforms])


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


def band_warp_matrix(factors: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """(N, bands, bands) linear maps that scale the frequencies of a mel band spectrum by factors[i]:
    band centre f takes the value at f / factors[i], interpolated between the band centres (points[1:-1],
    equally spaced in mel) and clamped at the edge bands."""
    centres = points[1:-1]  # (bands,) in mel
    bands = len(centres)
    source_hz = torch.from_numpy(mel2hz(centres)).float() / factors[:, None]  # (N, bands)
    source = ((torch.from_numpy(hz2mel(source_hz.numpy())) - centres[0]) / (centres[1] - centres[0])).float()
    source = source.clamp(0, bands - 1)
    left = source.floor().long().clamp(max=bands - 2)
    frac = source - left
    matrix = torch.zeros(len(factors), bands, bands)
    matrix.scatter_(2, left[:, :, None], (1 - frac)[:, :, None])
    return matrix.scatter_add_(2, left[:, :, None] + 1, frac[:, :, None])


def warp_mels(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation of log-mel x (N, MELS, frames): each x[i] sounds as if its
    frequencies were scaled by factors[i] (see band_warp_matrix)."""
    return band_warp_matrix(factors, MEL_POINTS) @ x


def cepstral_warp_matrix(factors: torch.Tensor) -> torch.Tensor:
    """(N, 13, 13): band_warp_matrix in the cepstral domain of mfcc_frames (26 bands, DCT, lifter 22);
    c0, which mfcc_frames replaces by the frame's log energy, is kept."""
    dct = Cepstrum(13, MFCC_BANDS).dct  # (13, 26), orthonormal rows
    n = torch.arange(13)
    lifter = torch.diag(1 + 11 * torch.sin(torch.pi * n / 22))  # python_speech_features' ceplifter=22
    matrix = lifter @ dct @ band_warp_matrix(factors, MFCC_POINTS) @ dct.T @ lifter.inverse()
    matrix[:, 0], matrix[:, :, 0] = 0, 0
    matrix[:, 0, 0] = 1
    return matrix


def warp_cepstra(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation of raw MFCCs x (N, 13, frames) from mfcc_frames (cepstral_warp_matrix)."""
    return cepstral_warp_matrix(factors) @ x


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


class Cepstrum(nn.Module):
    """The first `count` DCT-II coefficients (orthonormal) of every frame's log band energies:
    MFCCs from log-mel frames, (N, bands, frames) -> (N, count, frames)."""

    def __init__(self, count: int = 13, bands: int = MELS):
        super().__init__()
        k, m = torch.arange(count)[:, None], torch.arange(bands)
        dct = torch.cos(torch.pi * k * (2 * m + 1) / (2 * bands)) * math.sqrt(2 / bands)  # (count, bands)
        dct[0] /= math.sqrt(2)
        self.register_buffer("dct", dct)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("cm,nmt->nct", self.dct, x)


def build_net_cepstral_gap(cepstra: int = 13, channels: int = 32) -> nn.Sequential:
    """For MELS x frames log-mel: MFCCs (Cepstrum), normalized per utterance (CMVN), then gap_head."""
    return nn.Sequential(Cepstrum(cepstra), nn.InstanceNorm1d(cepstra), *gap_head(cepstra, channels))


def build_net_mfcc_norm_gap(channels: int = 32) -> nn.Sequential:
    """For raw 13 x 74 MFCCs: per-utterance CMVN (InstanceNorm1d) as the first layer, then gap_head."""
    return nn.Sequential(nn.InstanceNorm1d(13), *gap_head(13, channels))


def build_net_logmel_gap(channels: int = 32) -> nn.Sequential:
    """For MELS x FRAMES log-mel frames: gap_head."""
    return nn.Sequential(*gap_head(MELS, channels))


def build_net_filterbank(filters: int = 40, channels: int = 32) -> nn.Sequential:
    """For 1 x 6000 raw samples: a learned filterbank (101-tap convolution, squared, averaged over
    10 ms frames, log, normalized per utterance like CMVN), then gap_head over the 75 frames."""
    return nn.Sequential(
        nn.Conv1d(1, filters, 101, stride=4, padding=50, bias=False), Square(), nn.AvgPool1d(20),
        LogEnergy(), nn.InstanceNorm1d(filters), *gap_head(filters, channels))


@dataclass(frozen=True)
class Recipe:
    """One model of the speaker-independent study: its input, network, training and augmentation."""
    about: str  # one line for the notebook's tables
    features: str  # a FRONT_ENDS key: 'waveform' (1 x 6000), 'mfcc' (13 x 74), 'logmel' (MELS x FRAMES), ...
    build: Callable[[], nn.Module]
    epochs: int
    lr: float  # peak of the one-cycle schedule (AdamW)
    batch_size: int = 32
    cmvn: bool = False  # per-utterance MFCC mean/variance normalization
    max_shift: int = 0  # random shift either way (BatchLoader's), samples or frames
    max_delay: int = 0  # random delay (shift right only: keeps the onset), samples or frames
    speed: float = 0.0  # random speed factor in [1 - speed, 1 + speed] (waveforms; frames: tempo only)
    vtlp: float = 0.0  # random frequency scaling in [1 - vtlp, 1 + vtlp] (log-mel or raw MFCC features)
    snr_db: tuple[float, float] | None = None  # random white noise (waveforms)
    masks: tuple[int, int] = (0, 0)  # widest masked band of feature channels and of frames
    members: int = 1  # networks trained from different seeds, their probabilities averaged


class AugmentedLoader(helpers.BatchLoader):
    """A shuffling BatchLoader that perturbs every training batch as its recipe says."""

    def __init__(self, data: torch.utils.data.Dataset, batch_size: int, recipe: Recipe):
        super().__init__(data, batch_size, shuffle=True, max_shift=recipe.max_shift)
        self.recipe = recipe

    def __iter__(self):
        r = self.recipe
        for X, y in super().__iter__():
            if r.max_delay:
                X = helpers.time_shift(X, torch.randint(0, r.max_delay + 1, (len(X),)))
            if r.speed:
                X = speed_perturb(X, 1 + r.speed * (2 * torch.rand(len(X)) - 1))
            if r.vtlp:
                warp = warp_cepstra if r.features == "mfcc" else warp_mels
                X = warp(X, 1 + r.vtlp * (2 * torch.rand(len(X)) - 1))
            if r.snr_db:
                X = add_noise(X, torch.empty(len(X)).uniform_(*r.snr_db))
            if r.features == "waveform" and (r.speed or r.snr_db):
                X = standardize(X)
            if r.masks[0]:
                X = mask_band(X, r.masks[0], dim=1)
            if r.masks[1]:
                X = mask_band(X, r.masks[1], dim=2)
            yield X, y


# -----------------------------------------------------------------------------
# Training and prediction (the interface of tools/recognize.py: recording_features, fit, predict_proba)

FRONT_ENDS = {"waveform": waveform_features, "mfcc": mfcc_features, "logmel": logmel_features,
              "logmel_stretched": stretched_logmel_features, "mfcc_speech": speech_mfcc_features}  # (N, channels, length) from a list of waveforms


def recording_features(recipe: Recipe, waveforms: list[np.ndarray]) -> torch.Tensor:
    """recipe's network input for waveforms as helpers.read_wav returns them (8 kHz, any length)."""
    x = FRONT_ENDS[recipe.features](waveforms)
    return utterance_cmvn(x) if recipe.cmvn else x


class Ensemble(nn.Module):
    """Networks trained from different seeds: the log of their mean class probabilities."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).softmax(1) for member in self.members]).mean(0).log()


def train_network(recipe: Recipe, loader: AugmentedLoader, progress: tqdm) -> nn.Module:
    """A new recipe.build() trained on loader's batches (AdamW, one-cycle schedule; as helpers.train)."""
    net = recipe.build()
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=0.0, fused=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, epochs=recipe.epochs,
                                                    steps_per_epoch=len(loader))
    net.train()
    for _ in range(recipe.epochs):
        for X, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            optimizer.step()
            scheduler.step()
        progress.update()
    return net.eval()


def fit(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, seed: int = 0, progress: bool = False) -> nn.Module:
    """recipe's network trained on all of x, y from seed `seed` (with recipe.members > 1: an Ensemble of
    networks from seeds seed * members, seed * members + 1, ...), in eval mode."""
    loader = AugmentedLoader(torch.utils.data.TensorDataset(x, y), recipe.batch_size, recipe)
    with tqdm(total=recipe.members * recipe.epochs, unit="epoch", disable=not progress) as bar:
        nets = []
        for member in range(recipe.members):
            torch.manual_seed(seed * recipe.members + member)
            nets.append(train_network(recipe, loader, bar))
    return nets[0] if recipe.members == 1 else Ensemble(nets).eval()


def predict_proba(net: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 10): net's class probabilities for every x[i]."""
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(X).softmax(1) for X in x.split(batch_size)])


def fit_predict(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor,
                test_idx: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Train recipe's network on x[train_idx] from seed `seed`; its predicted digits for x[test_idx]."""
    return predict_proba(fit(recipe, x[train_idx], y[train_idx], seed), x[test_idx]).argmax(1)


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
LOGMEL = Recipe("build_net_logmel_gap on trimmed log-mel (CMVN), delay <= 10 frames, SpecAugment masks", "logmel",
                build_net_logmel_gap, epochs=30, lr=1e-3, max_delay=10, masks=(4, 10))

RECIPES = {  # evaluated in full (evaluate_recipe)
    "mfcc_cmvn": MFCC_CMVN,
    "mfcc_cmvn_x3": replace(MFCC_CMVN, about="mfcc_cmvn, an ensemble of 3 networks (seeds), probabilities averaged",
                            members=3),
    "waveform": WAVEFORM,
    "filterbank": replace(WAVEFORM, about="build_net_filterbank (learned log filterbank), augmented as waveform",
                          build=build_net_filterbank, epochs=25),
}

SCREENED = {  # screened on a few held-out speakers only (update_screening; results file, "screening")
    "logmel_vtlp": replace(LOGMEL, about="logmel with VTLP 0.85-1.15 and tempo 0.9-1.1", vtlp=0.15, speed=0.1),
    "logmel": LOGMEL,
    "cepstral_vtlp": replace(LOGMEL, about="build_net_cepstral_gap (MFCCs + CMVN computed from the log-mel), "
                             "VTLP 0.85-1.15, delay <= 10 frames, SpecAugment masks", build=build_net_cepstral_gap,
                             vtlp=0.15),
    "stretched": replace(LOGMEL, about="build_net_logmel_gap on trimmed log-mel (CMVN) stretched to 50 frames, "
                         "VTLP 0.85-1.15, SpecAugment masks", features="logmel_stretched", max_delay=0,
                         masks=(4, 5), vtlp=0.15),
    "mfcc_vtlp": replace(MFCC_CMVN, about="build_net_mfcc_norm_gap (CMVN in the network), VTLP 0.85-1.15 in the "
                         "cepstral domain, delay <= 10 frames, SpecAugment masks", build=build_net_mfcc_norm_gap,
                         cmvn=False, vtlp=0.15),
    "mfcc_tempo": replace(MFCC_CMVN, about="mfcc_cmvn with tempo 0.8-1.2 (the MFCC frames stretched or squeezed)",
                          speed=0.2),
    "mfcc_speech": replace(MFCC_CMVN, about="mfcc_cmvn with CMVN over the trimmed recording's own frames, before "
                           "the zero padding", features="mfcc_speech", cmvn=False),
    "mfcc_wide": replace(MFCC_CMVN, about="mfcc_cmvn with build_net_mfcc_gap(64): twice the channels",
                         build=partial(build_net_mfcc_gap, 64)),
}

RECOGNIZER = "mfcc_cmvn_x3"  # the recipe tools/recognize.py trains on all 3,000 recordings


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
    """evaluate_recipe for each named recipe in RECIPES, on FSDD waveforms or MFCCs from data_dir."""
    data = load_fsdd(data_dir)
    return {name: evaluate_recipe(RECIPES[name], recording_features(RECIPES[name], data["recordings"]), data["y"],
                                  data["speakers"], data["indices"], SPLIT_SEED) for name in names}


def write_results(results: dict, file: Path = RESULTS_FILE) -> None:
    """Write the results file atomically: a killed run never leaves a broken file."""
    file.parent.mkdir(exist_ok=True)
    staged = file.with_suffix(".partial")
    staged.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(staged, file)


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
    """Leave-one-speaker-out accuracy of recipe `name` (RECIPES or SCREENED) on the named held-out speakers
    only, merged into `file` under screening/name."""
    recipe, data, results = {**RECIPES, **SCREENED}[name], load_fsdd(data_dir), read_results(file)
    x, y, start = recording_features(recipe, data["recordings"]), data["y"], time.perf_counter()
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
