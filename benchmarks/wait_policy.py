"""One training step of the 3.6 network under each OpenMP wait policy, quiet and with a busy core.

OMP_WAIT_POLICY is read once, when torch starts its threads, so every setting runs in a process of
its own. Each prints the best of `--rounds` interleaved rounds of 10 steps (batch 32, plain SGD) for
the assignment's loop (float32, default layout), the project's in float32 and the project's in bf16
(where the CPU has it: speed.native_bf16), the project's with channels-last convolutions and
fast_pooling as helpers.train runs them.

    .venv/bin/python benchmarks/wait_policy.py [--rounds 4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name: (environment, busy core)
    "unset": ({}, False),
    "PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, False),
    "unset, one core busy": ({}, True),
    "PASSIVE, one core busy": ({"OMP_WAIT_POLICY": "PASSIVE"}, True),
    "1 thread, one core busy": ({"BENCHMARK_THREADS": "1"}, True),
}


def step_times(rounds: int) -> dict[str, float]:
    """Milliseconds per step, best round, for each path (run in the child process)."""
    import torch
    from torch import nn
    sys.path.insert(0, str(ROOT))
    import helpers
    import speed
    from scripts.notebook_definitions import notebook_definitions

    helpers.set_threads(int(os.environ.get("BENCHMARK_THREADS", 0)) or None)
    build = notebook_definitions()["build_net"]
    x, y = torch.randn(32, 1, 6000), torch.randint(0, 10, (32,))
    loss = nn.CrossEntropyLoss()

    def stepper(project: bool, bf16: bool):
        torch.manual_seed(0)
        net = speed.fast_pooling(speed.channels_last(build())) if project else build()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.02, fused=project)

        def step() -> None:
            optimizer.zero_grad()
            with speed.mixed_precision(torch.device("cpu"), bf16):
                l = loss(net(x), y)
            l.backward()
            optimizer.step()
        return step

    paths = {"assignment": stepper(False, False), "project fp32": stepper(True, False)}
    if speed.native_bf16(torch.device("cpu")):
        paths["project bf16"] = stepper(True, True)
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(rounds):
        for name, step in paths.items():
            step(), step()  # warm up
            start = time.perf_counter()
            for _ in range(10):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / 10 * 1000)
    return best


def run_setting(environment: dict, busy: bool, rounds: int) -> dict[str, float]:
    """step_times in a fresh process with `environment`, optionally beside a busy-looping process."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "BENCHMARK_THREADS")}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        done = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(rounds)], check=True,
                              capture_output=True, text=True, env=inherited | environment)
    finally:
        if hog:
            hog.kill()
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(step_times(args.rounds)))
        return
    for name, (environment, busy) in SETTINGS.items():
        times = run_setting(environment, busy, args.rounds)
        print(f"{name:>24}: " + ", ".join(f"{path} {ms:.1f} ms" for path, ms in times.items()), flush=True)


if __name__ == "__main__":
    main()
