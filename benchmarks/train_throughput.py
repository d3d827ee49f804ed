"""Training throughput of the 3.6 base network: the assignment's path against the project's path.

Both paths train `build_net()` for the same number of SGD steps at batch size 32 on the same
recordings, in one process, one after the other:
- assignment: a Dataset that reads and normalizes a wav per item, a DataLoader, and the
  assignment's training loop (SGD, d2l.Accumulator and d2l.accuracy after every batch);
- project: the preloaded tensors of helpers.SpokenDigits, helpers.BatchLoader and helpers.train.
It prints examples/s, the GFLOP/s reached against a float32 matrix-multiply ceiling measured in the
same run, and last `speedup: X.XXx` (project examples/s over assignment examples/s).

    .venv/bin/python benchmarks/train_throughput.py [--steps 60] [--threads N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from d2l import torch as d2l
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import helpers  # noqa: E402

BATCH_SIZE = 32


class WavFiles(torch.utils.data.Dataset):
    """The assignment's kind of dataset: one wav read and normalized per item."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(helpers.load_waveform(self.files[idx])).unsqueeze(0)  # (1, 6000)
        return x, helpers.parse_file_name(self.files[idx])[0]


def assignment_path(files: list[Path], lr: float) -> float:
    """Seconds for one pass of the assignment's training loop over `files`."""
    net, loss = helpers.build_net(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    train_iter = torch.utils.data.DataLoader(WavFiles(files), batch_size=BATCH_SIZE, shuffle=True)
    start = time.perf_counter()
    metric = d2l.Accumulator(3)
    net.train()
    for X, y in train_iter:
        optimizer.zero_grad()
        y_hat = net(X)
        l = loss(y_hat, y)
        l.backward()
        optimizer.step()
        with torch.no_grad():
            metric.add(l * X.shape[0], d2l.accuracy(y_hat, y), X.shape[0])
    return time.perf_counter() - start


def project_path(data: helpers.SpokenDigits, count: int, lr: float) -> float:
    """Seconds for helpers.train over the first `count` preloaded recordings (one epoch)."""
    subset = torch.utils.data.Subset(data, range(count))
    train_iter = helpers.BatchLoader(subset, BATCH_SIZE, shuffle=True)
    test_iter = helpers.BatchLoader(torch.utils.data.Subset(data, range(BATCH_SIZE)), BATCH_SIZE)
    start = time.perf_counter()
    helpers.train(helpers.build_net(), train_iter, test_iter, num_epochs=1, lr=lr,
                  device=torch.device("cpu"), animate=False)
    return time.perf_counter() - start


def training_flops_per_example(net: nn.Module, length: int = 6000) -> float:
    """Multiply-adds of Conv1d and Linear layers, times 2 (FLOPs), times 3 (forward + backward)."""
    flops = []

    def count(layer: nn.Module, inputs, output) -> None:
        fan_in = layer.weight[0].numel()  # in_channels/groups * kernel, or in_features
        flops.append(2 * fan_in * output[0].numel())

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, 1, length))
    for hook in hooks:
        hook.remove()
    return 3 * sum(flops)


def matmul_ceiling_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Best float32 n x n matrix-multiply rate in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="SGD steps per path (batch 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: helpers' choice)")
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = helpers.SpokenDigits(helpers.download_fsdd())
    count = args.steps * BATCH_SIZE
    files = [data.files[i] for i in torch.randperm(len(data.files))[:count]]
    flops = training_flops_per_example(helpers.build_net())
    ceiling = matmul_ceiling_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps of "
          f"batch {BATCH_SIZE}, {flops / 1e6:.1f} MFLOP per training example")
    print(f"float32 matmul ceiling: {ceiling:.1f} GFLOP/s")
    rates = {}
    for name, run in (("assignment", lambda: assignment_path(files, args.lr)),
                      ("project", lambda: project_path(data, count, args.lr))):
        run()  # warm-up pass (caches, allocator), not timed
        seconds = run()
        rates[name] = count / seconds
        gflops = rates[name] * flops / 1e9
        print(f"{name:>10}: {rates[name]:7.1f} examples/s, {gflops:5.2f} GFLOP/s "
              f"({100 * gflops / ceiling:.0f}% of the matmul ceiling)")
    print(f"speedup: {rates['project'] / rates['assignment']:.2f}x")


if __name__ == "__main__":
    main()
