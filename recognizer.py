"""The digit recognizer that tools/recognize.py trains: recipes, augmentation, ensembles (torch).

    front end      reader.py's, as torch tensors; perturb_voice: copies of a recording in other voices
    network, fit   Recipe, AugmentedLoader, Ensemble, fit (through helpers.train); Combination, Combined:
                   recipes on different front ends, their log-probabilities summed with weights
    model file     recognizer(): trained once on all FSDD recordings, exported to numpy (export) and saved
                   through reader.py, which reads every later run without torch

A user's recording goes from tools/recognize.py through reader.py (front end, segmentation, network) to
audio.py (reading); this module trains. study.py (the leave-one-speaker-out experiments) imports this
module, not the other way round.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import lfilter
from torch import nn
from tqdm import tqdm

import audio
import helpers
import reader
from atomic import torch_save_atomically
from reader import EMBEDDING_SIZE, standardize


# -----------------------------------------------------------------------------
# Front end: reader.py's, as tensors; copies in other voices

FRONT_END_CODE = {"waveform": (reader.waveform_features, reader.standardize, reader.fixed_length),
                  "mfcc": (reader.mfcc_features, reader.mfcc_frames, reader.fixed_length),
                  "embedding": (reader.embedding_features, reader.embedding_models, reader.embedding_input,
                                reader.mel_windows, reader.speech_embeddings, reader.pooled,
                                reader.pooled_embeddings)}
FRONT_END_CONSTANTS = {"waveform": ("SIZE",), "mfcc": ("SIZE",),  # reader's settings the code above reads
                       "embedding": ("EMBEDDING_RATE", "EMBEDDING_WINDOW", "EMBEDDING_STEP", "EMBEDDING_SECONDS")}
CACHE_DIR = Path(__file__).parent / "models"  # training_features' cache (ignored by git)


def recording_features(recipe: Recipe | Combination, waveforms: list[np.ndarray]) -> torch.Tensor:
    """recipe's network input (reader.network_input) for waveforms as audio.read_audio returns them; for a
    Combination, its parts' inputs flattened and concatenated (N, D)."""
    if isinstance(recipe, Combination):
        return torch.cat([recording_features(part, waveforms).flatten(1) for part in recipe.parts], 1)
    return torch.from_numpy(reader.network_input(recipe.features, recipe.cmvn, waveforms))


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


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, **options) -> list[nn.Module]:
    """Convolution, batch norm and ReLU: the building block of the convolutional networks."""
    return [nn.Conv1d(in_channels, out_channels, kernel_size, **options), nn.BatchNorm1d(out_channels), nn.ReLU()]


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


def build_net_embedding_head(hidden: int = 256, dropout: float = 0.3) -> nn.Sequential:
    """For pooled speech embeddings (3 x 96): batch norm as a learned standardization, a hidden layer
    with dropout before and after it, 10 logits."""
    return nn.Sequential(nn.BatchNorm1d(3 * EMBEDDING_SIZE), nn.Dropout(dropout), nn.Linear(3 * EMBEDDING_SIZE, hidden),
                         nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))


@dataclass(frozen=True)
class Recipe:
    """One model of the speaker-independent study: its input, network, training and augmentation."""
    about: str  # one line for the notebook's tables
    features: str  # a reader.FRONT_ENDS key: 'waveform' (1 x 6000), 'mfcc' (13 x 74), 'embedding' (3 x 96)
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
    copy_snr_db: tuple[float, float] = (10, 40)  # the white noise of those copies, dB below the speech


@dataclass(frozen=True)
class Combination:
    """Recipes trained apart, each on its own front end, their log-probabilities summed with weights. One
    recording's input is every part's input, flattened and concatenated (recording_features)."""
    about: str
    parts: tuple[Recipe, ...]
    weights: tuple[float, ...]

    @property
    def copies(self) -> int:
        """Copies per recording in the training input (training_features): the most any part has."""
        return max(part.copies for part in self.parts)


INPUT_SHAPES = {"waveform": (1, reader.SIZE), "mfcc": (13, 74), "embedding": (3 * EMBEDDING_SIZE,)}  # per recording


def part_slices(recipe: Combination) -> list[slice]:
    """Where each part's flattened input lies in a recording's concatenated input."""
    ends = np.cumsum([np.prod(INPUT_SHAPES[part.features]) for part in recipe.parts]).tolist()
    return [slice(a, b) for a, b in zip([0, *ends[:-1]], ends)]


def part_input(recipe: Combination, k: int, x: torch.Tensor) -> torch.Tensor:
    """Part k's input in x, the concatenated input of N recordings (N, D) or with copies (N, 1 + copies, D):
    (N, *shape), or (N, 1 + its copies, *shape) for a part with copies."""
    part, columns = recipe.parts[k], part_slices(recipe)[k]
    shape = INPUT_SHAPES[part.features]
    if x.ndim == 2:
        return x[:, columns].reshape(len(x), *shape)
    if part.copies:
        return x[:, :part.copies + 1, columns].reshape(len(x), part.copies + 1, *shape)
    return x[:, 0, columns].reshape(len(x), *shape)


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


def front_end_source(recipe: Recipe) -> str:
    """The source of the functions that turn waveforms into recipe's training and network input, and the
    values of the settings they read."""
    functions = (reader.network_input, recording_features, training_features, perturb_voice,
                 *FRONT_END_CODE[recipe.features])
    constants = [f"{name} = {getattr(reader, name)!r}" for name in FRONT_END_CONSTANTS[recipe.features]]
    return "\n".join([*(inspect.getsource(f) for f in functions), *constants])


def training_features(recipe: Recipe | Combination, waveforms: list[np.ndarray], cache_dir: Path | None = CACHE_DIR,
                      seed: int = 0) -> torch.Tensor:
    """recording_features; with recipe.copies, (N, 1 + copies, ...): every recording and its perturb_voice
    copies (seeded), kept in cache_dir under a fingerprint of the waveforms, the recipe's front end and code.
    A Combination's parts are concatenated along the last axis (a part without copies repeated for each)."""
    if isinstance(recipe, Combination):
        xs = [training_features(part, waveforms, cache_dir, seed) for part in recipe.parts]
        if not recipe.copies:
            return torch.cat([x.flatten(1) for x in xs], 1)
        return torch.cat([(x if part.copies else x[:, None].expand(-1, recipe.copies + 1, *x.shape[1:])).flatten(2)
                          for part, x in zip(recipe.parts, xs)], 2)
    if not recipe.copies:
        return recording_features(recipe, waveforms)
    digest = hashlib.sha256(f"{recipe.features} {recipe.cmvn} {recipe.copies} {recipe.copy_snr_db} {seed}\n"
                            f"{front_end_source(recipe)}".encode())
    for w in waveforms:
        digest.update(np.ascontiguousarray(w, np.float32).tobytes())
    file = cache_dir / f"features-{digest.hexdigest()[:16]}.pt" if cache_dir else None
    if file and file.exists():
        return torch.load(file)
    rng = np.random.default_rng(seed)
    with ThreadPoolExecutor(1) as worker:  # one round's features computed while the next round's copies are made
        rounds = [worker.submit(recording_features, recipe, waveforms)]
        for _ in range(recipe.copies):
            copies = [perturb_voice(w, rng, snr_db=recipe.copy_snr_db) for w in waveforms]
            rounds[-1].result()  # at most one round of copies waits (memory)
            rounds.append(worker.submit(recording_features, recipe, copies))
        x = torch.stack([done.result() for done in rounds], 1)
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


class Combined(nn.Module):
    """A Combination's trained networks: the weighted sum of their log-probabilities for the concatenated input."""

    def __init__(self, recipe: Combination, nets: list[nn.Module]):
        super().__init__()
        self.recipe, self.nets = recipe, nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, D)
        return sum(w * net(part_input(self.recipe, k, x)).log_softmax(1)
                   for k, (net, w) in enumerate(zip(self.nets, self.recipe.weights)))


def train_network(recipe: Recipe, loader: AugmentedLoader) -> nn.Module:
    """A new recipe.build() trained on loader's batches by helpers.train (AdamW, one-cycle schedule, float32 on
    the CPU), in eval mode."""
    net = recipe.build()
    helpers.train(net, loader, None, recipe.epochs, recipe.lr, torch.device("cpu"), optimizer="adamw",
                  schedule="onecycle", bf16=False, animate=False)
    return net.eval()


def fit(recipe: Recipe | Combination, x: torch.Tensor, y: torch.Tensor, seed: int = 0,
        progress: bool = False) -> nn.Module:
    """recipe's network trained on all of x, y from seed `seed` (with recipe.members > 1: an Ensemble of
    networks from seeds seed * members, seed * members + 1, ...), in eval mode; a Combination's parts each
    trained on their own input from the same seed (Combined)."""
    if isinstance(recipe, Combination):
        nets = [fit(part, part_input(recipe, k, x), y, seed, progress) for k, part in enumerate(recipe.parts)]
        return Combined(recipe, nets).eval()
    loader = AugmentedLoader(torch.utils.data.TensorDataset(x, y), recipe.batch_size, recipe)
    nets = []
    for member in tqdm(range(recipe.members), unit="network", disable=not progress):
        torch.manual_seed(seed * recipe.members + member)
        nets.append(train_network(recipe, loader))
    return nets[0] if recipe.members == 1 else Ensemble(nets).eval()


# -----------------------------------------------------------------------------
# Export: the trained network as numpy arrays (reader.Model), read without torch

def layer_arrays(layer: nn.Module) -> list[tuple[str, list[np.ndarray]]]:
    """A layer in eval mode as reader.LAYERS kinds and their arrays (dropout: none); ValueError for others."""
    if isinstance(layer, nn.Dropout):
        return []
    if isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
        return [("flatten", [])]
    if isinstance(layer, nn.ReLU):
        return [("relu", [])]
    if isinstance(layer, nn.AdaptiveAvgPool1d) and layer.output_size in (1, (1,)):
        return [("mean_over_time", [])]
    if isinstance(layer, nn.MaxPool1d) and layer.stride == layer.kernel_size and layer.padding == 0 \
            and layer.dilation == 1 and not layer.ceil_mode:
        return [("max_pool", [np.array(layer.kernel_size)])]
    if isinstance(layer, nn.Conv1d) and layer.kernel_size[0] % 2 and layer.padding == (layer.kernel_size[0] // 2,) \
            and layer.stride == (1,) and layer.dilation == (1,) and layer.groups == 1 and layer.padding_mode == "zeros":
        return [("conv_same", [layer.weight.detach().numpy(), layer.bias.detach().numpy()])]
    if isinstance(layer, nn.Linear):
        return [("linear", [layer.weight.detach().numpy(), layer.bias.detach().numpy()])]
    if isinstance(layer, nn.BatchNorm1d):  # (x - mean) / sqrt(var + eps) * weight + bias
        scale = layer.weight.detach() / torch.sqrt(layer.running_var + layer.eps)
        return [("scale_shift", [scale.numpy(), (layer.bias.detach() - layer.running_mean * scale).numpy()])]
    raise ValueError(f"reader.py has no numpy version of {layer}; recognize with a network of Flatten, "
                     "BatchNorm1d, Linear, ReLU, Dropout, Conv1d (stride 1, 'same' zero padding), MaxPool1d and "
                     "AdaptiveAvgPool1d(1) layers")


def export_network(net: nn.Module, recipe: Recipe) -> reader.Network:
    """The trained network (a Sequential, or an Ensemble of them) as a reader.Network for recipe's front end."""
    members = net.members if isinstance(net, Ensemble) else [net]
    return reader.Network(recipe.features, recipe.cmvn,
                          [[kind for layer in member for kind in layer_arrays(layer)] for member in members])


def export(net: nn.Module, recipe: Recipe | Combination) -> reader.Model:
    """The trained network (of a Recipe, weight 1; or a Combination's Combined) as a reader.Model."""
    if isinstance(recipe, Combination):
        return reader.Model([export_network(n, part) for n, part in zip(net.nets, recipe.parts)], list(recipe.weights))
    return reader.Model([export_network(net, recipe)], [1.0])


# -----------------------------------------------------------------------------
# The model: trained once, exported, saved; reader.py reads it

EMBEDDING = Recipe("build_net_embedding_head on Google's speech embedding (pretrained on far more speakers, frozen; "
                "mean, std and max of its 96 values every 80 ms over the word centred in 1.5 s), 8 perturb_voice "
                "copies of every recording (speed 0.85-1.15, spectral tilt, reverberation, noise 10-40 dB, gain, "
                "timing), an ensemble of 5",
                   "embedding", build_net_embedding_head, epochs=30, lr=3e-3, batch_size=64, members=5, copies=8)
MFCC = Recipe("build_net_mfcc_gap, per-utterance CMVN, delay <= 10 frames, SpecAugment masks", "mfcc",
              build_net_mfcc_gap, epochs=30, lr=1e-3, cmvn=True, max_delay=10, masks=(2, 9))
MFCC_WEIGHT = 0.3  # the best leaving one speaker out of the weights whose random split reaches study.SEEN_GOAL (README)
RECIPE = Combination(f"embedding + {MFCC_WEIGHT} x mfcc_cmvn: log-probabilities summed (the two front ends make "
                     "different mistakes)", (EMBEDDING, MFCC), (1.0, MFCC_WEIGHT))
# RECIPE is what tools/recognize.py trains (the study's 'embedding+mfcc'); tests pass smaller replace()s of it


def recipe_fingerprint(recipe: Recipe | Combination) -> str:
    """sha256 of what the model depends on: the recipe's fields (functions by their source), the
    network's layers and the source of the recipe's front end (front_end_source); a Combination's weights
    and its parts' fingerprints."""
    if isinstance(recipe, Combination):
        text = "\n".join([repr(recipe.weights), *(recipe_fingerprint(part) for part in recipe.parts)])
        return hashlib.sha256(text.encode()).hexdigest()
    fields = [f"{field.name}={_describe(getattr(recipe, field.name))}" for field in dataclasses.fields(recipe)]
    text = "\n".join([*fields, repr(build_model(recipe)), front_end_source(recipe)])
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(value: object) -> str:
    """A field value as text that is the same in every process (functions by their source)."""
    return inspect.getsource(value) if inspect.isfunction(value) else repr(value)


def build_model(recipe: Recipe | Combination) -> nn.Module:
    """An untrained network of the shape fit returns for recipe (an Ensemble if it has members)."""
    if isinstance(recipe, Combination):
        return Combined(recipe, [build_model(part) for part in recipe.parts])
    if recipe.members == 1:
        return recipe.build()
    return Ensemble([recipe.build() for _ in range(recipe.members)])


def model_header(recipe: Recipe | Combination) -> dict:
    """What a model file records to be reused: the file format, the recipe's fingerprint, and the code it
    was checked against (reader.source_digest: a later run with the same code skips the check, and torch)."""
    return {"format": reader.FORMAT, "fingerprint": recipe_fingerprint(recipe), "source": reader.source_digest()}


def check_layout(model: reader.Model, recipe: Recipe | Combination) -> None:
    """ValueError unless the model has the layer kinds and array shapes of recipe's network."""
    def layout(m: reader.Model) -> list:
        return [m.weights, [(n.features, n.cmvn, [[(kind, [a.shape for a in arrays]) for kind, arrays in layers]
                                                 for layers in n.members]) for n in m.networks]]
    if layout(model) != layout(export(build_model(recipe), recipe)):
        raise ValueError("its layers or their shapes are not those of the recipe's network")


def load_model(file: Path, recipe: Recipe | Combination) -> reader.Model | None:
    """The saved model if `file` holds one of `recipe`'s network; None (with a message) if not. A model
    checked against other code gets this code's header (so the next run reads it without torch)."""
    if not file.exists():
        return None
    try:
        model, saved = reader.load_model(file)
        header = model_header(recipe)
        stale = [key for key in ("format", "fingerprint") if saved.get(key) != header[key]]
        if not stale:
            check_layout(model, recipe)
            if saved.get("source") != header["source"]:
                _save(model, recipe, file)
            return model
        problem = f"is outdated (another {' and '.join(stale)}: trained with another file format, recipe or front end)"
    except Exception as err:  # noqa: BLE001 - any damage (zip, json, keys, shapes) means: train again
        problem = f"is unreadable ({type(err).__name__}: {err})"
    print(f"{file} {problem}; training a new one.", file=sys.stderr)
    return None


def save_model(net: nn.Module, recipe: Recipe | Combination, file: Path) -> None:
    """Write the trained network (exported to numpy) and its header (model_header) to `file` atomically;
    ValueError if it is not recipe's network."""
    model = export(net, recipe)
    check_layout(model, recipe)
    _save(model, recipe, file)


def _save(model: reader.Model, recipe: Recipe | Combination, file: Path) -> None:
    """reader.save_model with recipe's header."""
    reader.save_model(model, model_header(recipe), file)


def train_model(recipe: Recipe | Combination, data_dir: Path, models_dir: Path) -> nn.Module:
    """fit of `recipe` on all FSDD recordings (downloaded into data_dir if missing); the features of the
    recordings and their copies are cached in models_dir (training_features)."""
    files = audio.list_recordings(helpers.download_fsdd(data_dir))
    print(f"Training the recognizer on {len(files):,} FSDD recordings; this takes minutes once.",
          file=sys.stderr)
    x = training_features(recipe, [audio.read_wav(f) for f in files], models_dir)
    y = torch.tensor([audio.parse_file_name(f)[0] for f in files])
    return fit(recipe, x, y, seed=0, progress=True)


def recognizer(models_dir: Path, data_dir: Path, recipe: Recipe | Combination, retrain: bool = False) -> reader.Model:
    """The model of `recipe` (reader.Model): loaded from models_dir, else trained and saved there."""
    file = models_dir / reader.MODEL_FILE
    model = None if retrain else load_model(file, recipe)
    if model is None:
        model = export(train_model(recipe, data_dir, models_dir), recipe)
        try:
            _save(model, recipe, file)
            print(f"Saved the recognizer to {file}.", file=sys.stderr)
        except OSError as err:
            print(f"Could not save the recognizer to {file} ({err}); it serves this run only.", file=sys.stderr)
    return model
