"""Training throughput of the 3.6 base network: the assignment's path against the project's path.

Every path trains `build_net()` for the same number of SGD steps at batch size 32 on the same
recordings, in one process, lever by lever:
- assignment: a Dataset that reads and normalizes a wav per item, a DataLoader, and the
  assignment's training loop (SGD, d2l.Accumulator and d2l.accuracy after every batch);
- preloaded: the same loop over the preloaded tensors of the notebook's SpokenDigits (helpers.BatchLoader);
- project fp32: helpers.train (fused optimizer, channels-last convolutions) in float32;
- project: helpers.train as the notebook runs it (bf16 mixed precision where the CPU has it);
- notebook: the notebook's own 3.6(f) call, train(build_net(), train_iter, test_iter, ...) for
  NOTEBOOK_EPOCHS epochs of its 2,000 training recordings, in a Jupyter kernel that has executed every cell before
  3.6(f), as ./export_pdf.sh runs it; timed twice: the training steps alone (what d2l's loop
  prints) and the whole call (evaluation of the test set and the live plot included).
The assignment's path runs with torch's default thread count (what a student gets), the others
with helpers.set_threads(); the kernel inherits this process's environment,
as it does under export_pdf.sh. Each path runs `--rounds` times, interleaved
with the others; it reports its best and median round (this shared machine's speed drifts by 20 %
and more), the GFLOP/s reached against a float32 matrix-multiply ceiling measured in the same run,
and last `speedup: X.XXx`: the notebook's whole call over the assignment's loop, both best rounds.

    .venv/bin/python benchmarks/train_throughput.py [--steps 60] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from d2l import torch as d2l
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import helpers  # noqa: E402
import speed  # noqa: E402
from scripts.notebook_definitions import NOTEBOOK, notebook_definitions  # noqa: E402

NB = notebook_definitions()  # the notebook's build_net, load_waveform and SpokenDigits

BATCH_SIZE = 32


class WavFiles(torch.utils.data.Dataset):
    """The assignment's kind of dataset: one wav read and normalized per item."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(NB["load_waveform"](self.files[idx])).unsqueeze(0)  # (1, 6000)
        return x, helpers.parse_file_name(self.files[idx])[0]


def assignment_loop(train_iter, lr: float) -> float:
    """Seconds for one pass of the assignment's training loop (plain SGD, float32) over `train_iter`."""
    net, loss = NB["build_net"](), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
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


def project_train(data: torch.utils.data.Dataset, count: int, lr: float, bf16: bool | None) -> float:
    """Seconds of the training steps of helpers.train over the first `count` preloaded recordings (one epoch)."""
    subset = torch.utils.data.Subset(data, range(count))
    train_iter = helpers.BatchLoader(subset, BATCH_SIZE, shuffle=True)
    test_iter = helpers.BatchLoader(torch.utils.data.Subset(data, range(BATCH_SIZE)), BATCH_SIZE)
    result = helpers.train(NB["build_net"](), train_iter, test_iter, num_epochs=1, lr=lr,
                           device=torch.device("cpu"), bf16=bf16, animate=False)
    return result.timing["steps"]


NOTEBOOK_RUN = "base_sgd = train("  # the first cell of the notebook that trains (3.6(f))
NOTEBOOK_EPOCHS = 5  # enough for the live plot to redraw as often as in a long run (every 2 s)
PROBE = f"""
torch.manual_seed(SEED)
probe = train(build_net(), train_iter, test_iter, num_epochs={NOTEBOOK_EPOCHS}, lr=lr, title="benchmark")
print(json.dumps({{"examples": {NOTEBOOK_EPOCHS} * len(train_iter.y), "call": probe.seconds, **probe.timing}}))
"""


@contextmanager
def notebook_kernel() -> Iterator[Callable[[], dict]]:
    """A kernel that has run the notebook up to 3.6(f); yields a function that trains there as 3.6(f) does
    for NOTEBOOK_EPOCHS epochs and returns its examples and seconds (the whole call, and the data,
    steps, evaluation and plot)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first_run = next(i for i, cell in enumerate(nb.cells) if NOTEBOOK_RUN in cell.source)
    nb.cells = nb.cells[:first_run] + [nbformat.v4.new_code_cell("import json")]
    client = NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)

        def run() -> dict:
            cell = nbformat.v4.new_code_cell(PROBE)
            nb.cells.append(cell)
            client.execute_cell(cell, len(nb.cells) - 1)
            return json.loads([o.text for o in cell.outputs if o.output_type == "stream"][-1].splitlines()[-1])
        yield run


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
    parser.add_argument("--steps", type=int, default=60, help="SGD steps per round (batch 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path")
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    default_threads, threads = torch.get_num_threads(), helpers.set_threads()
    torch.manual_seed(0)
    data = NB["SpokenDigits"](helpers.download_fsdd())
    count = args.steps * BATCH_SIZE
    order = torch.randperm(len(data.files))[:count]
    files = [data.files[i] for i in order]
    preloaded = torch.utils.data.TensorDataset(data.x[order], data.y[order])
    flops = training_flops_per_example(NB["build_net"]())
    print(f"torch {torch.__version__}, {args.steps} steps of batch {BATCH_SIZE}, {args.rounds} rounds, "
          f"{flops / 1e6:.1f} MFLOP per training example, native bf16: {speed.native_bf16(torch.device('cpu'))}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    in_process = {
        "assignment": (default_threads, lambda: assignment_loop(
            torch.utils.data.DataLoader(WavFiles(files), batch_size=BATCH_SIZE, shuffle=True), args.lr)),
        "preloaded": (threads, lambda: assignment_loop(
            helpers.BatchLoader(preloaded, BATCH_SIZE, shuffle=True), args.lr)),
        "project fp32": (threads, lambda: project_train(data, count, args.lr, bf16=False)),
        "project": (threads, lambda: project_train(data, count, args.lr, bf16=None)),
    }
    rates: dict[str, list[float]] = {name: [] for name in [*in_process, "notebook steps", "notebook call"]}
    ceiling = 0.0
    with notebook_kernel() as notebook_run:
        breakdowns = []
        for round_ in range(args.rounds + 1):  # the first round warms up caches and the allocator, untimed
            for name, (count_threads, run) in in_process.items():
                torch.set_num_threads(count_threads)
                ceiling = max(ceiling, matmul_ceiling_gflops())
                seconds = run()
                if round_:
                    rates[name].append(count / seconds)
            torch.set_num_threads(threads)
            run = notebook_run()
            if round_:
                rates["notebook steps"].append(run["examples"] / run["steps"])
                rates["notebook call"].append(run["examples"] / run["call"])
                breakdowns.append(run)
    for name, values in rates.items():
        best, median = max(values), statistics.median(values)
        gflops = best * flops / 1e9
        print(f"{name:>14}: {best:6.1f} examples/s best, {median:6.1f} median, {gflops:5.1f} GFLOP/s "
              f"= {100 * gflops / ceiling:.0f}% of the float32 matmul ceiling ({ceiling:.0f} GFLOP/s)")
    run = min(breakdowns, key=lambda b: b["call"])
    print(f"notebook, {NOTEBOOK_EPOCHS} epochs (best round): " + ", ".join(
        f"{part} {run[part]:.2f} s" for part in ["call", "steps", "evaluation", "plot", "data"]))
    print(f"speedup: {max(rates['notebook call']) / max(rates['assignment']):.2f}x")


if __name__ == "__main__":
    main()
