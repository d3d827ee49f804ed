"""The digit recognizer that tools/recognize.py runs, whole: from a recording to its digits.

    front end      waveform (8 kHz, any length) -> network input: RECIPE's pretrained speech embedding
                   (the study's other recipes: the standardized waveform or MFCCs), perturb_voice copies
    segmentation   speech_segments: the spoken parts of a long recording, one digit each
    network, fit   Recipe, AugmentedLoader, Ensemble, fit (through helpers.train)
    prediction     read_digits: the digits and their probability (helpers.predict_proba)
    model file     recognizer(): trained once on all FSDD recordings, saved atomically, loaded after

A user's recording goes down from tools/recognize.py through here to audio.py (reading) and helpers.py
(training, prediction); study.py (the leave-one-speaker-out experiments) imports this module, not the
other way round.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from python_speech_features import mfcc
from scipy.signal import lfilter, resample_poly
from torch import nn
from tqdm import tqdm

import audio
import helpers
from atomic import torch_save_atomically

SIZE = 6000  # samples kept per recording (0.75 s at 8 kHz), as in the notebook


# -----------------------------------------------------------------------------
# Front end: waveforms to network input

def standardize(x: np.ndarray | torch.Tensor):
    """Every signal (last axis) to mean 0 and standard deviation 1: a waveform's samples, or each channel
    of MFCCs over its frames (per-utterance cepstral mean and variance normalization, CMVN)."""
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


# -----------------------------------------------------------------------------
# Pretrained front end: Google's speech embedding (Lin et al. 2020, arXiv 2002.01322; Apache-2.0),
# the two ONNX files in openwakeword 0.5.1's wheel, run with onnxruntime (openwakeword's code is not used)

EMBEDDING_RATE = 16000  # Hz: the models' input, int16 scale
EMBEDDING_WINDOW, EMBEDDING_STEP = 76, 2  # mel frames (10 ms each) per embedding; frames between embeddings
EMBEDDING_SECONDS = 1.0  # every clip is centred in at least this much silence
EMBEDDING_SIZE = 96
EMBEDDING_BATCH = 64  # windows per call of the embedding model (the same numbers at any size; 512 peaked at 1.7 GB)


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


def pooled_embeddings(waveforms: list[np.ndarray]) -> torch.Tensor:
    """(N, 288): pooled speech embeddings of every waveform, centred in at least EMBEDDING_SECONDS."""
    return pooled(speech_embeddings(waveforms))


def embedding_features(waveforms: list[np.ndarray], chunk: int = 100) -> torch.Tensor:
    """pooled_embeddings, in chunks of `chunk` waveforms spread over one thread per core (onnxruntime runs
    without the GIL): the same numbers (every window is embedded on its own), a fraction of the time."""
    chunks = [waveforms[i:i + chunk] for i in range(0, len(waveforms), chunk)]
    with ThreadPoolExecutor(min(len(chunks), len(os.sched_getaffinity(0)))) as pool:
        return torch.cat(list(pool.map(pooled_embeddings, chunks)))


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


# -----------------------------------------------------------------------------
# The network and its fit: recipe, augmentation, ensemble

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


FRONT_ENDS = {"waveform": waveform_features, "mfcc": mfcc_features,  # (N, channels, length) from waveforms
              "embedding": embedding_features}  # (N, 3 x 96)


FRONT_END_CODE = {"embedding": (embedding_models, embedding_input, mel_windows, speech_embeddings, pooled,
                                pooled_embeddings)}
CACHE_DIR = Path(__file__).parent / "models"  # training_features' cache (ignored by git)


def recording_features(recipe: Recipe, waveforms: list[np.ndarray]) -> torch.Tensor:
    """recipe's network input for waveforms as helpers.read_wav returns them (8 kHz, any length)."""
    x = FRONT_ENDS[recipe.features](waveforms)
    return standardize(x) if recipe.cmvn else x


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
        torch_save_atomically(x, file)
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


# -----------------------------------------------------------------------------
# Prediction: the digits of recordings

def read_digits(net: nn.Module, recipe: Recipe, waveforms: list[np.ndarray]) -> list[tuple[list[int], float]]:
    """The digits spoken in every recording (one per spoken part, in order) and the probability of that
    sequence: the product of the parts' highest class probabilities."""
    parts = [spoken_parts(w) for w in waveforms]
    counts = [len(p) for p in parts]
    probability, digit = helpers.predict_proba(net, recording_features(recipe, sum(parts, [])), bf16=False).max(1)
    return [(d.tolist(), p.prod().item()) for d, p in zip(digit.split(counts), probability.split(counts))]


# -----------------------------------------------------------------------------
# The model: trained once, saved, loaded

RECIPE = Recipe("build_net_embedding_head on Google's speech embedding (pretrained on far more speakers, frozen; "
                "mean, std and max of its 96 values every 20 ms), 8 perturb_voice copies of every recording (speed "
                "0.85-1.15, spectral tilt, reverberation, noise 10-40 dB, gain, timing), an ensemble of 5",
                "embedding", build_net_embedding_head, epochs=30, lr=3e-3, batch_size=64, members=5, copies=8)
# RECIPE is what tools/recognize.py trains (the study's 'embedding'); tests pass smaller dataclasses.replace()s of it
FORMAT = 2  # version of the model file's layout; bump it when that changes
MODEL_FILE = "recognizer.pt"

def recipe_fingerprint(recipe: Recipe) -> str:
    """sha256 of what the model depends on: the recipe's fields (functions by their source), the
    network's layers and the source of the recipe's front end (front_end_source)."""
    fields = [f"{field.name}={_describe(getattr(recipe, field.name))}" for field in dataclasses.fields(recipe)]
    text = "\n".join([*fields, repr(build_model(recipe)), front_end_source(recipe)])
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(value: object) -> str:
    """A field value as text that is the same in every process (functions by their source)."""
    return inspect.getsource(value) if inspect.isfunction(value) else repr(value)


def build_model(recipe: Recipe) -> nn.Module:
    """An untrained network of the shape fit returns for recipe (an Ensemble if it has members)."""
    if recipe.members == 1:
        return recipe.build()
    return Ensemble([recipe.build() for _ in range(recipe.members)])


def model_header(recipe: Recipe) -> dict:
    """What a model file must record to be reused: the file format and the recipe's fingerprint."""
    return {"format": FORMAT, "fingerprint": recipe_fingerprint(recipe)}


def load_model(file: Path, recipe: Recipe) -> nn.Module | None:
    """The saved network if `file` holds one trained with `recipe`; None (with a message) if not."""
    if not file.exists():
        return None
    try:
        saved, header = torch.load(file, weights_only=True), model_header(recipe)
        stale = [key for key in header if saved.get(key) != header[key]]
        if not stale:
            net = build_model(recipe)
            net.load_state_dict(saved["state_dict"])
            return net.eval()
        problem = f"is outdated (another {' and '.join(stale)}: trained with another file format, recipe or front end)"
    except Exception as err:  # noqa: BLE001 - any damage (zip, pickle, keys, shapes) means: train again
        problem = f"is unreadable ({type(err).__name__}: {err})"
    print(f"{file} {problem}; training a new one.", file=sys.stderr)
    return None


def save_model(net: nn.Module, recipe: Recipe, file: Path) -> None:
    """Write the network and its header (model_header) to `file` atomically."""
    torch_save_atomically({**model_header(recipe), "state_dict": net.state_dict()}, file)


def train_model(recipe: Recipe, data_dir: Path, models_dir: Path) -> nn.Module:
    """fit of `recipe` on all FSDD recordings (downloaded into data_dir if missing); the features of the
    recordings and their copies are cached in models_dir (training_features)."""
    files = audio.list_recordings(helpers.download_fsdd(data_dir))
    print(f"Training the recognizer on {len(files):,} FSDD recordings; this takes minutes once.",
          file=sys.stderr)
    x = training_features(recipe, [audio.read_wav(f) for f in files], models_dir)
    y = torch.tensor([audio.parse_file_name(f)[0] for f in files])
    return fit(recipe, x, y, seed=0, progress=True)


def recognizer(models_dir: Path, data_dir: Path, recipe: Recipe, retrain: bool = False) -> nn.Module:
    """The network of `recipe`: loaded from models_dir, else trained and saved there."""
    file = models_dir / MODEL_FILE
    net = None if retrain else load_model(file, recipe)
    if net is None:
        net = train_model(recipe, data_dir, models_dir)
        try:
            save_model(net, recipe, file)
            print(f"Saved the recognizer to {file}.", file=sys.stderr)
        except OSError as err:
            print(f"Could not save the recognizer to {file} ({err}); it serves this run only.", file=sys.stderr)
    return net


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
# Reading the digits of wav files

@dataclass
class Reading:
    """What one file says: its digits and their probability, or why it could not be read."""
    file: Path
    digits: str = ""
    probability: float = 0.0
    error: audio.RecordingError | None = None


def read_files(net: nn.Module, files: list[Path], recipe: Recipe) -> list[Reading]:
    """The reading of every file, in order: the readable ones classified together (read_digits)."""
    readings, waveforms = [], []
    for file in files:
        try:
            waveforms.append(audio.read_audio(file))
            readings.append(Reading(file))
        except audio.RecordingError as err:
            readings.append(Reading(file, error=err))
    read = iter(read_digits(net, recipe, waveforms) if waveforms else [])
    for reading in readings:
        if reading.error is None:
            digits, reading.probability = next(read)
            reading.digits = "".join(map(str, digits))
    return readings
