"""speed.py: every speed-up keeps the outputs and gradients of the untouched network (speed: benchmarks/)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import speed
from conftest import ROOT, nb

CPU = torch.device("cpu")


def outputs_and_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The network's outputs for x and its parameters' gradients of the cross-entropy with y."""
    out = net(x)
    nn.functional.cross_entropy(out, y).backward()
    return out.detach(), [p.grad for p in net.parameters()]


@pytest.mark.parametrize("build", ["build_net", "build_net_dropout", "build_resnet"])
def test_speed_up_keeps_outputs_and_gradients(build):
    x, y = torch.randn(2, 1, 6000), torch.tensor([3, 7])
    torch.manual_seed(0)
    plain = getattr(nb, build)().eval()
    torch.manual_seed(0)
    fast = speed.speed_up(getattr(nb, build)(), CPU).eval()
    speed.speed_up(fast, CPU)  # twice: the same as once
    out, grads = outputs_and_gradients(plain, x, y)
    fast_out, fast_grads = outputs_and_gradients(fast, x, y)
    torch.testing.assert_close(fast_out, out, rtol=1e-5, atol=1e-6)
    for mine, reference in zip(fast_grads, grads):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("length", [10, 11])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_fast_pooling_gives_avgpool_outputs_and_gradients(length, layout):
    torch.manual_seed(0)
    x = torch.randn(3, 4, length)
    x = (speed.channels_last_copy(x) if layout == "channels-last" else x).requires_grad_()
    plain, fast = nn.AvgPool1d(2, 2), speed.fast_pooling(nn.Sequential(nn.AvgPool1d(2, 2)))
    grad = torch.randn(3, 4, length // 2)
    # exact: (a + b) * 0.5 and the pooling's mean round alike, and both hand back grad / 2
    assert torch.equal(fast(x), plain(x))
    mine, = torch.autograd.grad(fast(x), x, grad)
    reference, = torch.autograd.grad(plain(x), x, grad)
    assert torch.equal(mine, reference)


def test_fast_pooling_keeps_the_outputs_of_every_pooling():
    layers = [nn.AvgPool1d(3, 2), nn.AvgPool1d(2, 2), nn.AvgPool1d(2, 1), nn.AvgPool1d(2, 2, ceil_mode=True)]
    x = torch.randn(2, 3, 21)
    for layer in layers:
        assert torch.equal(speed.fast_pooling(nn.Sequential(layer))(x), nn.Sequential(type(layer)(
            layer.kernel_size, layer.stride, ceil_mode=layer.ceil_mode))(x)), layer


MMAPPED_MB = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import torch, speed
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
if sys.argv[2] == "reuse":
    speed.reuse_freed_memory()
before = libc.mallinfo2().hblkhd  # bytes in blocks of their own (mmap): returned to the system when freed
x = torch.ones(4 << 20)  # a 16 MB activation
print((libc.mallinfo2().hblkhd - before) >> 20)
"""


@pytest.mark.skipif(not Path("/lib/x86_64-linux-gnu/libc.so.6").exists(), reason="glibc on x86-64 only")
@pytest.mark.parametrize("mode, mmapped", [("default", 16), ("reuse", 0)])
def test_reuse_freed_memory_serves_activations_from_the_heap(mode, mmapped):
    """glibc by default maps a 16 MB block of its own (freed to the system, faulted in again next step);
    after reuse_freed_memory it comes from the heap, which keeps freed memory for the next step."""
    done = subprocess.run([sys.executable, "-c", MMAPPED_MB, str(ROOT), mode], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and int(done.stdout) == mmapped, done.stderr


def test_mixed_precision_runs_convolutions_in_bfloat16_only_when_enabled():
    conv, x = nn.Conv1d(1, 4, 5), torch.randn(2, 1, 50)
    with speed.mixed_precision(CPU, enabled=True):
        assert conv(x).dtype == torch.bfloat16
    with speed.mixed_precision(CPU, enabled=False):
        assert conv(x).dtype == torch.float32
    with speed.mixed_precision(CPU):  # by default: where the CPU computes bf16 natively
        assert torch.is_autocast_enabled("cpu") == speed.native_bf16(CPU)


def test_a3_bf16_0_computes_in_float32_everywhere(monkeypatch):
    """The switch that reproduces a CPU without AVX512-BF16 on one that has it (the margins' second run)."""
    monkeypatch.setenv("A3_BF16", "0")
    assert not speed.native_bf16(CPU)
    with speed.mixed_precision(CPU):
        assert nn.Conv1d(1, 4, 5)(torch.randn(2, 1, 50)).dtype == torch.float32
