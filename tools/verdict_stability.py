"""Whether 3.8(g)'s convergence verdicts hold on another CPU: the notebook's resnet and its network without
shortcuts, trained as the notebook trains them (seed 0, SGD, lr 0.02), judged at several lengths.

    .venv/bin/python tools/verdict_stability.py                 # bfloat16 where the CPU has it, 1 thread
    A3_BF16=0 .venv/bin/python tools/verdict_stability.py       # float32, as a CPU without AVX512-BF16
    .venv/bin/python tools/verdict_stability.py --threads 2 --epochs 45 --save runs.json

With constant-rate SGD a run of n epochs is the first n epochs of a longer one, so one run of the longest
length gives the verdict (helpers.converged's rule: the Theil-Sen line through the last third of the epochs
moves less than the test set's noise) at every shorter length too. Prints one line per network and length.
The trend's change against the noise ("no" where it is over; "." not measured), on two 2-core CPUs: the
1-thread rows on an AMD EPYC with AVX512-BF16, the 2-thread rows (the notebook's thread count) on an Intel
Xeon with AVX512-BF16 and AMX. At 30 epochs the verdicts flip with CPU, precision and thread count; at 35
every 2-thread run converges with a margin of at least a quarter of the noise.

    network, precision, threads   30 epochs            35                40                45 / 50 / 60
    resnet, bf16, 1               +0.018 / 0.014 no    .                 +0.002            . / +0.005 / +0.007
    resnet, float32, 1            +0.006               .                 -0.006            . / +0.002 / +0.011
    resnet, bf16, 2               -0.014 / 0.020       +0.007 / 0.016    +0.002            -0.007
    resnet, float32, 2            +0.007 / 0.015       +0.000            +0.000            +0.017 / 0.015 no
    no shortcuts, bf16, 1         +0.003               .                 +0.009            . / -0.003 / +0.000
    no shortcuts, float32, 1      +0.013 / 0.012 no    .                 -0.003            . / -0.001 / +0.002
    no shortcuts, bf16, 2         +0.003 / 0.013       +0.001 / 0.012    +0.011 / 0.011    -0.005
    no shortcuts, float32, 2      +0.015 / 0.010 no    +0.005 / 0.010    +0.000            +0.000

The notebook's own runs give the same curves as this script on the same CPU and thread count (its 35-epoch
bf16 run on the Xeon: +0.007 / 0.016 and +0.001 / 0.012). On the EPYC with 2 threads they gave, at 30
epochs, +0.005 / 0.015 and +0.009 / 0.013 (bf16), +0.002 / 0.015 and +0.014 / 0.011 no (float32).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers  # noqa: E402
from scripts.notebook_definitions import notebook_definitions  # noqa: E402

SEED = 0


def first_epochs(result: helpers.TrainResult, n: int) -> helpers.TrainResult:
    """The run as if it had stopped after n epochs (constant-rate SGD: the same updates up to there)."""
    train_loss, train_acc, test_acc = result.history[n - 1]
    return dataclasses.replace(result, train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
                               history=result.history[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=60, help="the longest length; verdicts every 5 epochs from 30")
    parser.add_argument("--save", type=Path, help="write each network's history (train loss, train acc, test acc) here")
    args = parser.parse_args()
    helpers.set_threads(args.threads)
    nb = notebook_definitions()
    data = nb["SpokenDigits"](helpers.download_fsdd())
    count = int(len(data) * 2 / 3)
    train, test = torch.utils.data.random_split(data, [count, len(data) - count],
                                                generator=torch.Generator().manual_seed(SEED))
    train_iter, test_iter = helpers.BatchLoader(train, 32, shuffle=True), helpers.BatchLoader(test, 32)
    print(f"bfloat16: {helpers.native_bf16(torch.device('cpu'))}, threads: {args.threads}")
    histories = {}
    for name in ("build_resnet", "build_plain_net"):
        torch.manual_seed(SEED)
        result = helpers.train(nb[name](), train_iter, test_iter, args.epochs, 0.02, animate=False)
        histories[name] = result.history
        for n in range(30, args.epochs + 1, 5):
            shorter = first_epochs(result, n)
            print(f"{name}, {n} epochs: {helpers.converged(shorter, test_size=len(test))}, "
                  f"test acc, last 10: {shorter.mean_test_acc(10):.3f}", flush=True)
    if args.save:
        args.save.write_text(json.dumps(histories))


if __name__ == "__main__":
    main()
