"""The toolbox of Assignment 3: receptive-field tools, FSDD download and loading (wav reading: audio.py), network shapes,
the training loop and evaluation, tables. The notebook defines the datasets and the networks its questions ask for."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import itertools
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MultipleLocator
import numpy as np
import torch
from scipy.stats import theilslopes
from torch import nn

from atomic import write_atomically
from audio import (SAMPLE_RATE, FSDDError, RecordingError,  # noqa: F401 (helpers.read_wav etc.: the notebook's names)
                   list_recordings, parse_file_name, read_wav)
from speed import mixed_precision, native_bf16, speed_up  # noqa: F401

# Fast mode, for the test suite (A3_FAST=1): train() runs every epoch as called, but on the first
# FAST_BATCHES batches only, so the whole notebook executes in about a minute.
FAST = os.environ.get("A3_FAST", "0") == "1"
FAST_BATCHES = 2


DEFAULT_DEVICE = torch.device("cuda:0" if torch.cuda.device_count() else "cpu")  # d2l.try_gpu()


def epoch_batches(data_iter):
    """The batches of one pass over `data_iter`: all of them, or the first FAST_BATCHES in fast mode."""
    return itertools.islice(data_iter, FAST_BATCHES) if FAST else data_iter


def set_threads(count: int | None = None) -> int:
    """Fix torch's CPU threads (`count`, else 1 in fast mode, else up to 2) and return the count.

    A fixed count keeps reruns identical. More threads than idle cores is costly: with one of two
    cores busy, a training step took 1.3x as long with 2 threads as with 1 (benchmarks/README.md).
    """
    default = 1 if FAST else min(2, len(os.sched_getaffinity(0)))
    count = count or default
    torch.set_num_threads(count)
    return count


# -----------------------------------------------------------------------------
# 3.1-3.4 Receptive fields (the assignment's given helpers)

def show_image(img: torch.Tensor, title: str | None = None, new_figure: bool = True) -> None:
    """Show a 2-D image with pixel numbers and grid lines.

    Each pixel is drawn as a vector square (pcolormesh), not as an embedded bitmap: a PDF or SVG viewer
    would smooth a 15x15 bitmap into blurs when it scales it up.
    """
    if new_figure:
        plt.figure(figsize=(5, 5))
    img = np.asarray(img, dtype=float)
    height, width = img.shape
    plt.pcolormesh(np.arange(width + 1) - .5, np.arange(height + 1) - .5, img, cmap="gray",
                   shading="flat", edgecolors="none", antialiased=False, rasterized=False)
    ax = plt.gca()
    ax.set_xlim(-.5, width - .5)
    ax.set_ylim(height - .5, -.5)  # row 0 at the top, as imshow draws it
    ax.set_aspect("equal")
    # plot pixel numbers (at most about five per axis, so they stay legible) and grid lines
    ax.set_xticks(np.arange(0, width, 1 if width <= 8 else math.ceil(width / 5)))
    ax.set_yticks(np.arange(0, height, 1 if height <= 8 else math.ceil(height / 5)))
    ax.set_xticks(np.arange(-.5, width, 1), minor=True)
    ax.set_yticks(np.arange(-.5, height, 1), minor=True)
    ax.grid(which="minor", color="gray", linestyle="-", linewidth=1.0)
    ax.tick_params(which="both", labelsize=6, length=0)
    # hide axis outline
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        plt.title(title, fontsize=7)


def fill_weights_with_ones(network: nn.Module) -> nn.Module:
    """Set all weights in the network to one and all biases to zero."""
    for name, param in network.named_parameters():
        if "weight" in name:
            param.data = torch.ones_like(param.data)
        elif "bias" in name:
            param.data = torch.zeros_like(param.data)
    return network


_GRADIENT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.AvgPool2d)


def compute_receptive_field(network: nn.Sequential, input_size=(15, 15),
                            binary: bool = True) -> list[torch.Tensor]:
    """The field of one central output pixel (channel 0) at every layer's input, 1-D or 2-D: the output's
    gradient there, or (`binary`) where that gradient is nonzero."""
    assert isinstance(network, torch.nn.Sequential), "This only works with torch.nn.Sequential networks."
    for layer in network:
        if not isinstance(layer, _GRADIENT_LAYERS):
            raise Exception("Sorry, this visualisation only works for Conv1d/2d and AvgPool1d/2d layers.")

    # initialize weights to ones, biases to zeros
    fill_weights_with_ones(network)

    # the number of input channels of the first convolution
    convs = [layer for layer in network if isinstance(layer, (nn.Conv1d, nn.Conv2d))]
    input_channels = convs[0].in_channels if convs else 1

    # forward pass, keeping every intermediate value: x is [samples, channels, *positions]
    x = torch.zeros(1, input_channels, *input_size)
    x.requires_grad = True
    y = x
    y.retain_grad()
    ys = [y]
    for layer in network:
        y = layer(y)
        y.retain_grad()
        ys.append(y)

    # backward pass from a single one in the middle of the output (channel 0)
    y_grad = torch.zeros_like(y)
    y_grad[(0, 0) + tuple((n - 1) // 2 for n in y.shape[2:])] = 1
    y.backward(y_grad)

    # the gradient at each layer is the receptive field in that layer
    receptive_fields = []
    for y in ys:
        receptive_field = y.grad
        if binary:
            receptive_field = receptive_field > 0
        receptive_fields.append(receptive_field)
    return receptive_fields


def plot_receptive_field(network: nn.Sequential, input_size=(15, 15), binary: bool = True) -> None:
    """Plot the receptive field of one output pixel at the input of every layer."""
    receptive_fields = compute_receptive_field(network, input_size, binary)
    # one row of up to six panels (6.6 of the page's 7 inches), else two rows; each panel 1.1 inches wide
    columns = len(receptive_fields) if len(receptive_fields) <= 6 else math.ceil(len(receptive_fields) / 2)
    rows = math.ceil(len(receptive_fields) / columns)
    plt.figure(figsize=(1.1 * columns, 1.3 * rows))
    for idx, receptive_field in enumerate(receptive_fields):
        plt.subplot(rows, columns, idx + 1)
        height, width = receptive_field.shape[2], receptive_field.shape[3]
        if idx == len(receptive_fields) - 1:
            plot_title = "output\n(%dx%d)" % (height, width)
        else:
            plot_title = "layer %d input\n(%dx%d)" % (idx, height, width)
        # plot the image with the receptive field (sample 0, channel 0)
        show_image(receptive_field[0, 0], new_figure=False, title=plot_title)
        if not binary:
            plt.colorbar(fraction=0.047 * height / width)
    plt.tight_layout()


def receptive_field_size(network: nn.Sequential, input_size=(15, 15), binary: bool = True) -> torch.Tensor:
    """Number of input pixels that one central output pixel depends on."""
    receptive_fields = compute_receptive_field(network, input_size, binary)
    return torch.count_nonzero(torch.flatten(receptive_fields[0][0, 0]))


def parameter_count(network: nn.Module) -> int:
    """Total number of elements in the network's parameters (weights and biases)."""
    return sum(param.numel() for param in network.parameters())


def print_parameter_count(network: nn.Module) -> None:
    """Print the number of parameters of the network."""
    print("%d parameters" % parameter_count(network))


# Analytic receptive fields: per axis, a unit after a layer sees the input offsets
# {s + t * d * j_in : s in offsets_in, t < k}, so r_out = r_in + (d * (k - 1)) * j_in,
# j_out = j_in * stride and out = (n + 2p - d * (k - 1) - 1) // stride + 1.

_FIELD_LAYERS = {nn.Conv1d: 1, nn.AvgPool1d: 1, nn.MaxPool1d: 1, nn.Conv2d: 2, nn.AvgPool2d: 2, nn.MaxPool2d: 2}
_POINTWISE_LAYERS = (nn.Identity, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class LayerField:
    """Receptive field of one output unit after a layer, per spatial axis."""
    layer: str
    size: tuple[int, ...]  # extent r of the field, in input pixels
    jump: tuple[int, ...]  # input pixels between neighbouring output units (product of strides)
    start: tuple[int, ...]  # input position where the field of output unit 0 starts (<0: padding)
    output: tuple[int, ...]  # output size
    offsets: tuple[tuple[int, ...], ...]  # input offsets, within the extent, the unit depends on

    @property
    def pixels(self) -> int:
        """Number of input pixels the unit depends on (less than the extent when dilated)."""
        return math.prod(len(axis) for axis in self.offsets)


def _per_axis(value, dims: int) -> tuple:
    """An int or tuple layer argument as one value per axis."""
    return (value,) * dims if isinstance(value, (int, str)) else tuple(value)


def receptive_field_table(network: nn.Sequential, input_size) -> list[LayerField]:
    """Analytic receptive field, jump and output size after every layer of a conv/pool stack."""
    dims = len(input_size)
    size, offsets = tuple(input_size), tuple((0,) for _ in input_size)
    jump, start = (1,) * dims, (0,) * dims
    table = []
    for layer in network:
        if not isinstance(layer, _POINTWISE_LAYERS):
            if _FIELD_LAYERS.get(type(layer)) != dims:
                raise TypeError(f"{type(layer).__name__} is not a {dims}-D convolution or pooling layer")
            if getattr(layer, "ceil_mode", False):
                raise ValueError("ceil_mode pooling is not supported")
            k, s = _per_axis(layer.kernel_size, dims), _per_axis(layer.stride, dims)
            d, pad = _per_axis(getattr(layer, "dilation", 1), dims), _per_axis(layer.padding, dims)
            span = tuple(di * (ki - 1) for ki, di in zip(k, d))  # k_eff - 1
            p = tuple(0 if pi == "valid" else sp // 2 if pi == "same" else pi for pi, sp in zip(pad, span))
            size = tuple(n if pi == "same" else (n + 2 * pn - sp - 1) // si + 1
                         for n, pi, pn, sp, si in zip(size, pad, p, span, s))
            if min(size) < 1:
                raise ValueError(f"{type(layer).__name__} gets an input smaller than its kernel")
            offsets = tuple(tuple(sorted({o + t * di * j for o in axis for t in range(ki)}))
                            for axis, ki, di, j in zip(offsets, k, d, jump))
            start = tuple(b - pi * j for b, pi, j in zip(start, p, jump))
            jump = tuple(j * si for j, si in zip(jump, s))
        table.append(LayerField(type(layer).__name__, tuple(axis[-1] + 1 for axis in offsets),
                                jump, start, size, offsets))
    return table


def _shape(values: tuple[int, ...]) -> str:
    """A size tuple written as 9x9."""
    return "x".join(str(v) for v in values)


def print_receptive_field_table(network: nn.Sequential, input_size) -> None:
    """Print the analytic receptive field, jump and output size after every layer."""
    for idx, field in enumerate(receptive_field_table(network, input_size)):
        print(f"after layer {idx} ({field.layer}): receptive field {_shape(field.size)} "
              f"({field.pixels} pixels), jump {_shape(field.jump)}, output {_shape(field.output)}")


def network_summary(networks: dict[str, nn.Sequential], input_size) -> str:
    """Markdown table with the layers, parameters, output size and receptive field of each network."""
    rows = ["| Method | Layers | Parameters | Output size | Receptive field |",
            "| --- | --- | --- | --- | --- |"]
    for name, network in networks.items():
        field = receptive_field_table(network, input_size)[-1]
        rows.append(f"| {name} | {len(network)} | {parameter_count(network)} | {_shape(field.output)} "
                    f"| {_shape(field.size)} ({receptive_field_size(network, input_size)} pixels) |")
    return "\n".join(rows)


# -----------------------------------------------------------------------------
# 3.5 Free Spoken Digit Dataset: download

FSDD_VERSION = "1.0.10"
FSDD_URL = ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/"
            f"v{FSDD_VERSION}.tar.gz")
FSDD_NUM_FILES = 3000
# sha256 over the sorted lines "{file name} {sha256 of the file}\n" of all recordings:
# it checks the content, so a re-compressed archive of the same tag still verifies.
FSDD_RECORDINGS_SHA256 = "dbd573d7cafe79c4b49f65718115e1304e24e067fa39eff18a660dc6cb9c360f"
_COMPLETE_MARKER = ".complete"
_OFFLINE_HINT = (f"Offline? Point FSDD_SOURCE at a copy of the archive (a local path or URL), e.g.\n"
                 f"  FSDD_SOURCE=/path/to/free-spoken-digit-dataset-{FSDD_VERSION}.tar.gz ./export_pdf.sh\n"
                 f"or pass download_fsdd(source=...). The archive is {FSDD_URL}")


def recordings_digest(folder: Path) -> str:
    """Content checksum of the .wav files in `folder` (see FSDD_RECORDINGS_SHA256)."""
    total = hashlib.sha256()
    for wav in sorted(Path(folder).glob("*.wav")):
        total.update(f"{wav.name} {hashlib.sha256(wav.read_bytes()).hexdigest()}\n".encode())
    return total.hexdigest()


def download_fsdd(data_dir: str | os.PathLike = "data", source: str | os.PathLike | None = None) -> Path:
    """Download FSDD into `data_dir` once; return the folder that holds its 3,000 wavs.

    `source` (or the environment variable FSDD_SOURCE) may be a URL or a local archive;
    the default is GitHub's archive of tag v1.0.10. The download is verified and atomic:
    a failed run leaves `data_dir` as it was, and a rerun starts afresh.
    """
    data_dir = Path(data_dir)
    recordings = data_dir / f"free-spoken-digit-dataset-{FSDD_VERSION}" / "recordings"
    if (recordings / _COMPLETE_MARKER).is_file():
        _check_complete(recordings)
        return recordings
    if recordings.parent.exists():
        raise FSDDError(f"{recordings.parent} exists but is not a complete download (no "
                        f"{_COMPLETE_MARKER} marker). It was left untouched: move or delete it, "
                        "then run again.")
    if data_dir.exists() and not data_dir.is_dir():
        raise FSDDError(f"{data_dir} is a file, not a folder: pass another data_dir or move the file.")
    created = [d for d in (data_dir, *data_dir.parents) if not d.exists()]  # deepest first
    data_dir.mkdir(parents=True, exist_ok=True)
    source = str(source or os.environ.get("FSDD_SOURCE") or FSDD_URL)
    try:
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".fsdd-download-") as tmp:
            archive = _fetch(source, Path(tmp))
            staged = Path(tmp) / recordings.parent.name / "recordings"
            _extract_recordings(archive, staged)
            _verify_recordings(staged, source)
            (staged / _COMPLETE_MARKER).write_text(FSDD_RECORDINGS_SHA256 + "\n")
            try:
                os.replace(staged.parent, recordings.parent)  # atomic on one file system
            except OSError:
                if not (recordings / _COMPLETE_MARKER).is_file():  # else a parallel run finished first
                    raise
    except BaseException:
        for folder in created:  # leave the disk as it was
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return recordings


def _check_complete(recordings: Path) -> None:
    """Fail if files were deleted from a complete download (reruns must see the same data)."""
    count = len(list(recordings.glob("*.wav")))
    if count != FSDD_NUM_FILES:
        raise FSDDError(f"{recordings} holds {count} recordings, expected {FSDD_NUM_FILES}: files were "
                        f"added or deleted after the download. Delete {recordings.parent} and run again.")


def _fetch(source: str, tmp: Path) -> Path:
    """Return a local path to the archive at `source`, downloading it into `tmp` if it is a URL."""
    if not re.match(r"^[a-z][a-z0-9+.-]*://", source):
        path = Path(source).expanduser()
        if not path.is_file():
            what = "is a folder, not an archive" if path.is_dir() else "does not exist"
            raise FSDDError(f"FSDD archive {path} {what}. Set FSDD_SOURCE to the path or URL "
                            f"of free-spoken-digit-dataset-{FSDD_VERSION}.tar.gz.")
        return path
    from tqdm import tqdm

    target = tmp / "fsdd.tar.gz"
    try:
        with urllib.request.urlopen(source, timeout=30) as response, open(target, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc="Downloading FSDD") as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise FSDDError(f"Could not download the FSDD archive from {source}: {err}\n{_OFFLINE_HINT}") from err
    if size is not None and target.stat().st_size != size:
        raise FSDDError(f"The download from {source} was interrupted ({target.stat().st_size} of {size} "
                        f"bytes); nothing was kept. Run again.\n{_OFFLINE_HINT}")
    return target


def _extract_recordings(archive: Path, staged: Path) -> None:
    """Extract the archive's recordings/*.wav into `staged`, refusing unsafe members."""
    staged.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts:
                    raise FSDDError(f"Refusing unsafe member {member.name!r} in archive {archive}: "
                                    "it would be written outside the data folder. Use the genuine "
                                    "FSDD archive.")
                if len(parts) >= 2 and parts[-2] == "recordings" and parts[-1].endswith(".wav"):
                    if not member.isfile():
                        raise FSDDError(f"Refusing non-regular member {member.name!r} (a link or device) "
                                        f"in archive {archive}. Use the genuine FSDD archive.")
                    with tar.extractfile(member) as src, open(staged / parts[-1], "wb") as dst:
                        shutil.copyfileobj(src, dst)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise FSDDError(f"The FSDD archive {archive} is corrupt or not a .tar.gz ({err}). "
                        "Delete it and download again, or point FSDD_SOURCE at a good copy.") from err


def _verify_recordings(folder: Path, source: str) -> None:
    """Check the number of recordings and their content checksum."""
    count = len(list(folder.glob("*.wav")))
    if count != FSDD_NUM_FILES:
        raise FSDDError(f"The archive from {source} holds {count} recordings, expected "
                        f"{FSDD_NUM_FILES}. Use the v{FSDD_VERSION} archive of FSDD.")
    digest = recordings_digest(folder)
    if digest != FSDD_RECORDINGS_SHA256:
        raise FSDDError(f"The recordings from {source} fail the checksum ({digest}); the archive "
                        f"is damaged or not v{FSDD_VERSION}. Download it again.")


# -----------------------------------------------------------------------------
# 3.5 Free Spoken Digit Dataset: the split

def training_indices(n: int, train_prop: float, seed: int) -> list[int]:
    """The indices that 3.5's random_split of n samples (the first int(n * train_prop) for training, a
    generator seeded `seed`) puts in training: choices made on them never see the test set."""
    count = int(n * train_prop)
    generator = torch.Generator().manual_seed(seed)
    part, _ = torch.utils.data.random_split(range(n), [count, n - count], generator=generator)
    return list(part.indices)


# -----------------------------------------------------------------------------
# 3.6-3.9 Network tools: shapes and parameter counts

def shape_trace(net: nn.Sequential, input_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """(layer name, output shape of one sample) for every layer, from a zero input (no side effects)."""
    training = net.training
    net.eval()  # batch norm must not update its running statistics
    trace, x = [("input", tuple(input_shape))], torch.zeros(1, *input_shape)
    with torch.no_grad():
        for layer in net:
            x = layer(x)
            trace.append((type(layer).__name__, tuple(x.shape[1:])))
    net.train(training)
    return trace


def dense_parameter_count(net: nn.Sequential, input_shape: tuple[int, ...]) -> int:
    """Parameters of `net` if every Conv1d were a fully connected layer with the same numbers of
    input and output features (its other layers kept)."""
    trace = shape_trace(net, input_shape)  # trace[i] is the input of layer i, trace[i + 1] its output
    dense = sum((math.prod(trace[i][1]) + 1) * math.prod(trace[i + 1][1])
                for i, layer in enumerate(net) if isinstance(layer, nn.Conv1d))
    convs = sum(parameter_count(layer) for layer in net if isinstance(layer, nn.Conv1d))
    return parameter_count(net) - convs + dense


# -----------------------------------------------------------------------------
# 3.6-3.9 Training

def tensors(data: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x, y) tensors of a dataset with preloaded .x and .y, a TensorDataset, or a Subset of one."""
    if isinstance(data, torch.utils.data.Subset):
        x, y = tensors(data.dataset)
        indices = torch.as_tensor(data.indices)
        return x[indices], y[indices]
    if isinstance(data, torch.utils.data.TensorDataset):
        return data.tensors
    return data.x, data.y


def time_shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each signal x[i] (channels, length) right by shifts[i] samples (left if negative), zero-filled."""
    length = x.shape[-1]
    source = torch.arange(length) - shifts[:, None]  # (N, length): where each output sample comes from
    inside = (source >= 0) & (source < length)
    shifted = x.gather(-1, source.clamp(0, length - 1)[:, None, :].expand_as(x))
    return shifted * inside[:, None, :]


class BatchLoader:
    """Minibatches (X, y) sliced from preloaded tensors: a fast DataLoader for in-memory data.

    With `shuffle`, every pass draws a new order from torch's global generator (seed it for
    reproducible runs); `max_shift` shifts every signal randomly in time by up to that many samples.
    """

    def __init__(self, data: torch.utils.data.Dataset, batch_size: int, shuffle: bool = False,
                 max_shift: int = 0):
        self.x, self.y = tensors(data)
        self.batch_size, self.shuffle, self.max_shift = batch_size, shuffle, max_shift

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.y)) if self.shuffle else torch.arange(len(self.y))
        for batch in order.split(self.batch_size):
            X = self.x[batch]
            if self.max_shift:
                X = time_shift(X, torch.randint(-self.max_shift, self.max_shift + 1, (len(batch),)))
            yield X, self.y[batch]

    def unaugmented(self) -> BatchLoader:
        """The same recordings in order, as the network takes them, without time shifts (to measure
        accuracy on them); a loader that augments otherwise overrides this."""
        return BatchLoader(torch.utils.data.TensorDataset(self.x, self.y), batch_size=256)


@dataclass
class TrainResult:
    """Final metrics of a training run, its (peak) learning rate and schedule, the per-epoch
    (train loss, train acc, test acc), and where its seconds went (see train)."""
    train_loss: float
    train_acc: float
    test_acc: float
    seconds: float
    lr: float
    history: list[tuple[float, float, float]]
    schedule: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    fit_acc: float = math.nan  # accuracy on the (unshifted) training recordings after training, in eval mode
    net: nn.Module | None = field(default=None, repr=False)  # the trained network

    def test_acc_after(self, epochs: int) -> float:
        """Test accuracy after the first `epochs` epochs of this run."""
        return self.history[epochs - 1][2]

    def mean_test_acc(self, last: int = 10) -> float:
        """Mean test accuracy of the `last` epochs: steadier than the last epoch's alone."""
        return sum(test_acc for _, _, test_acc in self.history[-last:]) / min(last, len(self.history))


def correct_count(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of rows of logits y_hat whose highest class is the label (d2l's accuracy)."""
    return float((y_hat.argmax(1) == y).sum())


def evaluate_accuracy(net: nn.Module, data_iter, device: torch.device, bf16: bool | None = None) -> float:
    """Fraction of correctly classified samples in `data_iter` (`bf16`: see mixed_precision)."""
    net.eval()
    correct, total = 0.0, 0
    with torch.inference_mode(), mixed_precision(device, bf16):
        for X, y in epoch_batches(data_iter):
            correct += correct_count(net(X.to(device)), y.to(device))
            total += len(y)
    return correct / total


def predict_proba(net: nn.Module, x: torch.Tensor, batch_size: int = 256, bf16: bool | None = None) -> torch.Tensor:
    """(N, classes): net's class probabilities for every x[i], on the CPU (`bf16`: see mixed_precision)."""
    net.eval()
    device = next(net.parameters()).device
    with torch.inference_mode(), mixed_precision(device, bf16):
        return torch.cat([net(X.to(device)).float().softmax(1).cpu() for X in x.split(batch_size)])


def predict(net: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted class of every x[i]: the most probable one."""
    return predict_proba(net, x, batch_size).argmax(1)


class LiveAnimator:
    """The live plot of d2l's train (d2l.Animator's figure and axes), redrawn at most every `interval`
    seconds (a redraw costs ~0.05 s); draw() redraws now."""

    def __init__(self, xlabel: str, ylabel: str, legend: list[str], xlim: list[float],
                 figsize: tuple[float, float] = (3.5, 2.5), fmts=('-', 'm--', 'g-.', 'r:'), interval: float = 2.0):
        from d2l import torch as d2l  # imported here: it loads torchvision and pandas (seconds)
        d2l.use_svg_display()
        self.fig, axes = plt.subplots(figsize=figsize)
        self.axes = [axes]
        def config_axes():  # d2l's axes, with the legend to the right of the curves instead of over them
            d2l.set_axes(axes, xlabel, ylabel, xlim, None, 'linear', 'linear', legend)
            axes.legend(legend, loc='upper left', bbox_to_anchor=(1.02, 1), fontsize=7, frameon=False)
            # values labelled every 0.5 and gridded every 0.1: an accuracy can be read off the curve
            axes.yaxis.set_major_locator(MultipleLocator(0.5))
            axes.yaxis.set_minor_locator(MultipleLocator(0.1))
            axes.grid(which='minor', axis='y', linewidth=0.4, alpha=0.4)
        self.config_axes = config_axes
        self.X, self.Y, self.fmts = None, None, fmts
        self.interval, self.drawn = interval, time.perf_counter()

    def add(self, x: float, y: tuple, last: bool = False) -> None:
        """Add the point (x, y[i]) to line i (None: no point); redraw if it is the `last` point or the last
        redraw is old enough."""
        self.X = self.X or [[] for _ in y]
        self.Y = self.Y or [[] for _ in y]
        for xs, ys, value in zip(self.X, self.Y, y):
            if value is not None:
                xs.append(x)
                ys.append(value)
        if last or time.perf_counter() - self.drawn >= self.interval:
            self.draw()

    def draw(self) -> None:
        """Redraw the figure in the notebook's output (IPython imported here: reading wavs needs none of it)."""
        from IPython import display
        self.axes[0].cla()
        for x, y, fmt in zip(self.X, self.Y, self.fmts):
            self.axes[0].plot(x, y, fmt)
        self.config_axes()
        display.display(self.fig)
        display.clear_output(wait=True)
        self.drawn = time.perf_counter()


def report_progress(title: str, epoch: int, num_epochs: int) -> None:
    """Tell scripts/execute_notebook.py a training's epoch: one line in the file A3_PROGRESS_FILE names (if set)."""
    if path := os.environ.get("A3_PROGRESS_FILE"):
        try:
            write_atomically(path, f"{' '.join(title.split())}\t{epoch}\t{num_epochs}\n")
        except OSError:  # progress is only shown: never stop a training over it (e.g. its folder is gone)
            pass


def make_optimizer(net: nn.Module, name: str, lr: float, weight_decay: float, device: torch.device):
    """torch's 'sgd' or 'adamw' for `net`, fused (one kernel for all parameters) on a CPU or GPU."""
    fused = device.type in ("cpu", "cuda")
    optimizers = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adamw'")
    return optimizers[name](net.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


def training_plot(title: str, num_epochs: int) -> LiveAnimator:
    """The live plot of train loss, train acc and test acc (d2l's curves, one point per epoch), titled."""
    animator = LiveAnimator(xlabel='epoch', ylabel='loss / accuracy', xlim=[1, num_epochs],
                            legend=['train loss', 'train acc', 'test acc'], figsize=(2.8, 1.4))
    animator.fig.suptitle(title, fontsize=10)
    animator.fig.subplots_adjust(top=0.8)  # room for the title above the axes
    return animator


def train_epoch(net, train_iter, loss, optimizer, scheduler, device, bf16, timing: dict) -> tuple[float, float, int]:
    """One pass of d2l's training loop; (summed loss, correct, examples); its seconds added to `timing`."""
    loss_sum, correct, examples = 0.0, 0.0, 0  # as d2l's Accumulator(3)
    net.train()
    batches = iter(epoch_batches(train_iter))
    while True:
        tick = time.perf_counter()
        batch = next(batches, None)
        timing["data"] += time.perf_counter() - tick
        if batch is None:
            return loss_sum, correct, examples
        tick = time.perf_counter()
        X, y = batch[0].to(device), batch[1].to(device, torch.long)
        optimizer.zero_grad()
        with mixed_precision(device, bf16):
            y_hat = net(X)
            l = loss(y_hat, y)
        l.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        with torch.no_grad():
            loss_sum += float(l * X.shape[0])
            correct += correct_count(y_hat, y)
            examples += X.shape[0]
        timing["steps"] += time.perf_counter() - tick


def network_kind(net: nn.Module) -> str:
    """What a plot calls a network by its layers: 'CNN' or 'MLP', with dropout and/or batch norm."""
    layers = [type(m) for m in net.modules()]
    extras = [name for name, kinds in (("dropout", (nn.Dropout,)), ("batch norm", (nn.BatchNorm1d, nn.BatchNorm2d)))
              if any(issubclass(k, kinds) for k in layers)]
    kind = "CNN" if any(issubclass(k, (nn.Conv1d, nn.Conv2d)) for k in layers) else "MLP"
    return f"{kind} with {' and '.join(extras)}" if extras else kind


def train(net: nn.Module, train_iter, test_iter, num_epochs: int, lr: float,
          device: torch.device = DEFAULT_DEVICE, *, optimizer: str = "sgd", schedule: str | None = None,
          weight_decay: float = 0.0, bf16: bool | None = None, animate: bool = True,
          title: str | None = None) -> TrainResult:
    """Train a model on a GPU if there is one (the assignment's d2l train loop and curves; see the notebook's 3.6 note).

    Options: `optimizer` 'sgd' or 'adamw'; `schedule` None or 'onecycle' (warm up to `lr`, anneal to
    zero); `bf16` mixed precision (None: where the hardware has it); `animate=False` no plot, no prints;
    `title` names the plot; `test_iter=None` no evaluation (test acc NaN). Speed-ups: speed.speed_up.
    Returns the metrics, `fit_acc` (eval-mode accuracy on the unshifted training data), the history,
    the net and where the seconds went.
    """
    start = time.perf_counter()
    title = title or f"{network_kind(net)}: {optimizer.replace('sgd', 'SGD').replace('adamw', 'AdamW')}, lr {lr:g}"
    if animate:
        print('training on', device)
    bf16 = native_bf16(device) if bf16 is None else bf16  # resolved once: computed and printed alike
    speed_up(net.to(device), device)
    optimizer = make_optimizer(net, optimizer, lr, weight_decay, device)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=num_epochs,
                                                     steps_per_epoch=len(train_iter))
                 if schedule == "onecycle" else None)
    loss, animator = nn.CrossEntropyLoss(), training_plot(title, num_epochs) if animate else None
    history, timing = [], dict.fromkeys(["data", "steps", "evaluation", "plot"], 0.0)
    for epoch in range(num_epochs):
        loss_sum, correct, examples = train_epoch(net, train_iter, loss, optimizer, scheduler, device, bf16, timing)
        train_l, train_acc = loss_sum / examples, correct / examples
        tick = time.perf_counter()
        test_acc = evaluate_accuracy(net, test_iter, device, bf16) if test_iter is not None else math.nan
        timing["evaluation"] += time.perf_counter() - tick
        history.append((train_l, train_acc, test_acc))
        report_progress(title, len(history), num_epochs)
        if animator:
            tick = time.perf_counter()
            animator.add(len(history), (train_l, train_acc, test_acc), last=epoch == num_epochs - 1)
            timing["plot"] += time.perf_counter() - tick
    if animate:
        print(f'loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}')
        print(f'{examples * num_epochs / timing["steps"]:.1f} examples/sec on {str(device)}, '
              f'{"bfloat16" if bf16 else "float32"}')
    unaugmented = train_iter.unaugmented() if isinstance(train_iter, BatchLoader) else train_iter
    fit_acc = evaluate_accuracy(net, unaugmented, device, bf16)
    seconds = time.perf_counter() - start
    return TrainResult(train_l, train_acc, test_acc, seconds, lr, history, schedule, timing, fit_acc, net)


def test_noise(accuracy: float, test_size: int) -> float:
    """Two standard errors of an accuracy measured on `test_size` recordings: 2 sqrt(p (1 - p) / n)."""
    return 2 * math.sqrt(accuracy * (1 - accuracy) / test_size)


def difference_noise(accuracy: float, other: float, test_size: int) -> float:
    """The noise of the difference of two such accuracies (independent runs): two standard errors of it,
    sqrt(test_noise(accuracy)^2 + test_noise(other)^2)."""
    return math.hypot(test_noise(accuracy, test_size), test_noise(other, test_size))


def trend_change(result: TrainResult) -> float:
    """How much the test accuracy moves over the last third of the epochs along its Theil-Sen line."""
    window = len(result.history) // 3
    test_accs = [test_acc for _, _, test_acc in result.history[-window:]]
    return theilslopes(test_accs).slope * (window - 1)


def converged(result: TrainResult, longer: TrainResult | None = None, *, test_size: int,
              chance: float = 0.1) -> str:
    """Verdict on a run, 'yes (...)' or 'no (...)', with the change that decided it and the noise.

    A run has converged if its test accuracy no longer changes beyond the test set's noise (two
    standard errors, see test_noise): over the last third of its epochs, a straight line through the
    test accuracy moves by less than that (the median slope between every two epochs, Theil-Sen, so
    one epoch's dip does not tilt it). A one-cycle run ends flat whatever the network does
    (its learning rate goes to zero), so it is judged by `longer`, the same recipe trained twice as
    long: converged if that changes the test accuracy by less than the noise. A run that learned
    nothing (train accuracy under twice `chance`) has not converged.
    """
    if result.train_acc < 2 * chance:
        return "no (chance)"
    noise = test_noise(result.test_acc, test_size)
    if result.schedule is not None:
        if longer is None or len(longer.history) < 2 * len(result.history):
            raise ValueError("a scheduled run is judged by the same recipe run at least twice as long: pass `longer`")
        change, label = longer.test_acc - result.test_acc, "2x "
    else:
        if len(result.history) // 3 < 3:
            return "no (too few epochs)"
        change, label = trend_change(result), ""
    return f"{'yes' if abs(change) < noise else 'no'} ({label}{change:+.3f}, noise {noise:.3f})"


def screening_recordings(files: list[Path], indices, size: int = 6000) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """(N, size) waveforms of files[indices] as stored (int16 / 32768, zero-padded or cut), their digits, and
    the RMS amplitude of each whole recording."""
    waveforms = [read_wav(files[i]) for i in indices]
    raw = np.stack([np.pad(w, (0, size))[:size] for w in waveforms])
    labels = torch.tensor([parse_file_name(files[i])[0] for i in indices])
    return raw, labels, np.array([np.sqrt(np.mean(w ** 2)) for w in waveforms])


def build_screening_net() -> nn.Sequential:
    """3.5(b)'s small CNN for screening normalizations: (N, 1, 6000) -> (N, 10), two strided convolutions."""
    return nn.Sequential(
        nn.Conv1d(1, 16, kernel_size=64, stride=16), nn.ReLU(),  # (N, 16, 372)
        nn.Conv1d(16, 32, kernel_size=8, stride=4), nn.ReLU(),  # (N, 32, 92)
        nn.Flatten(), nn.Linear(32 * 92, 10))


def compare_normalizations(raw: np.ndarray, y: torch.Tensor, normalizations: dict[str, Callable], build: Callable,
                           num_epochs: int, lr: float, train_size: int = 600, batch_size: int = 32, seed: int = 0,
                           **options) -> list[dict]:
    """Train build() briefly once per normalization of the same recordings raw (N, length): the first
    `train_size` train, the others validate; one row of statistics and accuracies per normalization."""
    rows = []
    for name, normalize in normalizations.items():
        x = torch.from_numpy(np.stack([normalize(w) for w in raw])).float().unsqueeze(1)  # (N, 1, length)
        train_data = torch.utils.data.TensorDataset(x[:train_size], y[:train_size])
        validation = torch.utils.data.TensorDataset(x[train_size:], y[train_size:])
        torch.manual_seed(seed)
        result = train(build(), BatchLoader(train_data, batch_size, shuffle=True), BatchLoader(validation, 32),
                       num_epochs, lr, animate=False, **options)
        rows.append({"normalization": name, "min": x.min().item(), "max": x.max().item(),
                     "mean amplitude": x.abs().mean().item(), "train loss": result.train_loss,
                     "train acc": result.train_acc, "validation acc": result.test_acc})
    return rows


def markdown_table(rows: list[dict], digits: int = 3) -> str:
    """A Markdown table with one row per dict (its keys are the header); floats rounded. Each column's
    dashes are as long as its longest cell: pandoc sizes wrapped columns in that proportion."""
    def cell(value) -> str:  # a "|" inside a cell would end it: escape it
        return (f"{value:.{digits}f}" if isinstance(value, float) else str(value)).replace("|", "\\|")
    table = [[cell(key) for key in rows[0]]] + [[cell(value) for value in row.values()] for row in rows]
    widths = [max(3, *(len(line[i]) for line in table)) for i in range(len(table[0]))]
    lines = ["| " + " | ".join(line) + " |" for line in table]
    lines.insert(1, "| " + " | ".join("-" * width for width in widths) + " |")
    return "\n".join(lines)
