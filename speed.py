"""The CPU speed engine of helpers.train: the same updates as d2l's loop, computed faster.

speed_up(net, device) is the one call helpers.train makes. Measurements: benchmarks/README.md.
Private APIs are used here only, each with the version it was checked on and a fallback.
"""
from __future__ import annotations

import ctypes
import os

import torch
from torch import nn


def _cpu_feature(name: str) -> bool:
    """A private torch.cpu probe (checked on torch 2.14.0: _is_avx512_bf16_supported, _is_amx_tile_supported);
    False where this torch lacks it."""
    return getattr(torch.cpu, name, lambda: False)()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX.
    A3_BF16=0 in the environment says no everywhere: float32, as a CPU without them computes."""
    if os.environ.get("A3_BF16") == "0":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (_cpu_feature("_is_avx512_bf16_supported") or _cpu_feature("_is_amx_tile_supported"))


def mixed_precision(device: torch.device, enabled: bool | None = None) -> torch.autocast:
    """Autocast to bfloat16 on `device` (convolutions and matrix products; losses stay float32);
    `enabled=None` turns it on where the hardware computes bf16 natively (see native_bf16)."""
    enabled = native_bf16(device) if enabled is None else enabled
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def has_batch_norm(net: nn.Module) -> bool:
    """Whether `net` contains a batch-norm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def channels_last_copy(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, L) with the same values, stored channels innermost: strides (C * L, 1, C).
    (Explicit strides: for C = 1, .contiguous() would keep the ambiguous default layout.)"""
    _, c, length = x.shape
    return torch.empty_strided(x.shape, (c * length, 1, c), dtype=x.dtype, device=x.device).copy_(x)


def _channels_last_grad(layer: nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
    """Backward hook of Flatten: pass the gradient on channels-last, like the activations it flattened."""
    return tuple(channels_last_copy(g) if g is not None and g.dim() == 3 else g for g in grad_input)


def channels_last(net: nn.Module) -> nn.Module:
    """Store every Conv1d weight with its input channels innermost (in place, values unchanged).

    oneDNN then runs each convolution channels-last and hands the next layer channels-last
    activations, for which PyTorch's average pooling is up to 10x faster. Flatten gets a backward
    hook that returns its gradient in that layout too (a pooling backward with mixed layouts is
    4-8x slower). (Batch norm has no fast CPU kernel for that layout, so train() leaves networks
    with batch norm as they are.)
    """
    for layer in net.modules():
        if isinstance(layer, nn.Conv1d):
            layer.weight.data = channels_last_copy(layer.weight.data)  # (out, in, kernel)
        if isinstance(layer, nn.Flatten) and not hasattr(layer, "channels_last_hook"):
            layer.channels_last_hook = layer.register_full_backward_hook(_channels_last_grad)
    return net


class _PairMean(torch.autograd.Function):
    """AvgPool1d(kernel_size=2, stride=2) as the mean of the even and odd samples: the same values and
    gradients, in one pass over memory that keeps the input's layout (PyTorch's CPU pooling is slow on
    channels-last activations, its backward most: benchmarks/README.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # x (N, C, L) -> (N, C, L // 2)
        ctx.shape, ctx.channels_last = x.shape, x.stride(1) == 1 and x.shape[1] > 1
        pairs = 2 * (x.shape[-1] // 2)
        return (x[..., 0:pairs:2] + x[..., 1:pairs:2]) * 0.5

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        n, c, length = ctx.shape
        half, pairs = grad * 0.5, 2 * grad.shape[-1]
        grad_x = half.new_empty(n, length, c).transpose(1, 2) if ctx.channels_last else half.new_empty(n, c, length)
        grad_x[..., 0:pairs:2] = half
        grad_x[..., 1:pairs:2] = half
        grad_x[..., pairs:] = 0  # an odd last sample is in no pair
        return grad_x


def fast_pooling(net: nn.Module) -> nn.Module:
    """Run every AvgPool1d(kernel_size=2, stride=2) of `net` as _PairMean (in place; the same outputs)."""
    for layer in net.modules():
        if (type(layer) is nn.AvgPool1d and layer.kernel_size == (2,) and layer.stride == (2,)
                and layer.padding == (0,) and not layer.ceil_mode):
            layer.forward = _PairMean.apply
    return net


def reuse_freed_memory() -> None:
    """Keep freed memory for reuse instead of returning it to the system (glibc's malloc; elsewhere a no-op).

    A training step frees and allocates activations of a few MB. By default glibc serves such sizes
    with fresh mmap pages, or trims its heap, so every step faulted in ~1,500 pages (6 MB) and
    zeroed them: ~10 % of a step of the 3.6 network.
    """
    try:  # mallopt's option numbers checked on glibc 2.36 (x86-64 Linux)
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: allocations below 32 MB come from the heap
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GB of freed heap



def speed_up(net: nn.Module, device: torch.device) -> nn.Module:
    """Apply the CPU speed-ups to `net` (in place, the same outputs): reuse_freed_memory, fast_pooling, and
    channels_last for nets without batch norm. Elsewhere a no-op."""
    if device.type == "cpu":
        reuse_freed_memory()
        fast_pooling(net)
        if not has_batch_norm(net):
            channels_last(net)
    return net
