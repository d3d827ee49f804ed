"""Receptive fields (3.1-3.4): the analytic calculator agrees with the gradient method."""

from functools import cache

import nbformat
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import helpers
from scripts.notebook_definitions import NOTEBOOK

torch.set_num_threads(1)

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d}


@st.composite
def stacks(draw, dims: int, max_layers: int, max_kernel: int, max_stride: int, max_dilation: int,
           max_pooling: bool = False) -> nn.Sequential:
    """A random stack of convolutions and average (or max) pools with per-axis arguments."""
    def per_axis(values):
        return draw(st.tuples(*[values] * dims)) if dims > 1 and draw(st.booleans()) else draw(values)

    layers, channels = [], draw(st.integers(1, 3))
    for _ in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(["conv", "conv", "pool"]))
        k = per_axis(st.integers(1, max_kernel))
        s = per_axis(st.integers(1, max_stride))
        ks = k if isinstance(k, tuple) else (k,) * dims
        if kind == "conv":
            out = draw(st.integers(1, 3))
            d = per_axis(st.integers(1, max_dilation))
            layers.append(CONV[dims](channels, out, k, stride=s, padding=per_axis(st.integers(0, 3)),
                                     dilation=d))
            channels = out
        else:  # pools may pad at most half of the kernel
            p = tuple(draw(st.integers(0, ki // 2)) for ki in ks)
            if max_pooling:
                layers.append(MAX[dims](k, stride=s, padding=p, dilation=per_axis(st.integers(1, max_dilation))))
            else:
                layers.append(AVG[dims](k, stride=s, padding=p, count_include_pad=draw(st.booleans())))
    return nn.Sequential(*layers)


def roomy_input(net: nn.Sequential, dims: int, extra: int) -> tuple[int, ...]:
    """An input size in which the central output pixel's field stays clear of the borders."""
    field = helpers.receptive_field_table(net, (10_000,) * dims)[-1]
    return tuple(4 * (r + j - b) + extra for r, j, b in zip(field.size, field.jump, field.start))


def analytic_mask(net: nn.Sequential, input_size: tuple[int, ...]) -> torch.Tensor:
    """Input pixels of the central output pixel, placed by the calculator's start, jump and offsets."""
    field = helpers.receptive_field_table(net, input_size)[-1]
    mask = torch.ones((1,) * len(input_size), dtype=torch.bool)
    for axis, (n, out, b, j, offsets) in enumerate(
            zip(input_size, field.output, field.start, field.jump, field.offsets)):
        positions = torch.tensor([b + (out - 1) // 2 * j + o for o in offsets])
        assert positions.min() >= 0 and positions.max() < n, "field clipped by the border"
        line = torch.zeros(n, dtype=torch.bool)
        line[positions] = True
        mask = mask & line.reshape([-1 if a == axis else 1 for a in range(len(input_size))])
    return mask


def forward_sizes(net: nn.Sequential, input_size: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The input size and every layer's output size, by a forward pass."""
    convs = [layer for layer in net if isinstance(layer, (nn.Conv1d, nn.Conv2d))]
    x = torch.zeros(1, convs[0].in_channels if convs else 1, *input_size)
    sizes = [tuple(input_size)]
    for layer in net:
        x = layer(x)
        sizes.append(tuple(x.shape[2:]))
    return sizes


def reference_mask(net: nn.Sequential, input_size: tuple[int, ...]) -> torch.Tensor:
    """Input pixels of the central output pixel, by walking each layer's windows back from the output."""
    sizes = forward_sizes(net, input_size)
    dims = len(input_size)
    mask = torch.ones((1,) * dims, dtype=torch.bool)
    for axis in range(dims):
        positions = {(sizes[-1][axis] - 1) // 2}
        for layer, n_in in zip(reversed(net), reversed([s[axis] for s in sizes[:-1]])):
            k, s, d, p = (v if isinstance(v, int) else v[axis] for v in (
                layer.kernel_size, layer.stride, getattr(layer, "dilation", 1), layer.padding))
            positions = {i * s - p + t * d for i in positions for t in range(k)} & set(range(n_in))
        line = torch.zeros(input_size[axis], dtype=torch.bool)
        line[sorted(positions)] = True
        mask = mask & line.reshape([-1 if a == axis else 1 for a in range(dims)])
    return mask


def receptive_field_extent(network: nn.Sequential, input_size=(15, 15)) -> tuple[int, ...]:
    """Bounding-box size, per axis, of the input pixels one central output pixel depends on (by gradient)."""
    where = helpers.compute_receptive_field(network, input_size)[0][0, 0].nonzero()
    return tuple((where.max(0).values - where.min(0).values + 1).tolist())


def gradient_mask(net: nn.Sequential, input_size: tuple[int, ...]) -> torch.Tensor:
    """The gradient method's receptive field at the input (channel 0)."""
    return helpers.compute_receptive_field(net, input_size)[0][0, 0]


def check_against_gradient(net: nn.Sequential, dims: int, extra: int) -> None:
    """Calculator and gradient agree on the pixels, the count, the extent and every output size."""
    input_size = roomy_input(net, dims, extra)
    table = helpers.receptive_field_table(net, input_size)
    mask = gradient_mask(net, input_size)
    assert torch.equal(mask, analytic_mask(net, input_size))
    assert helpers.receptive_field_size(net, input_size) == table[-1].pixels
    assert receptive_field_extent(net, input_size) == table[-1].size
    assert forward_sizes(net, input_size)[1:] == [field.output for field in table]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(stacks(dims=1, max_layers=4, max_kernel=5, max_stride=3, max_dilation=3), st.integers(0, 3))
def test_calculator_matches_gradient_1d(net, extra):
    check_against_gradient(net, 1, extra)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(stacks(dims=2, max_layers=3, max_kernel=3, max_stride=2, max_dilation=3), st.integers(0, 3))
def test_calculator_matches_gradient_2d(net, extra):
    check_against_gradient(net, 2, extra)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(stacks(dims=2, max_layers=3, max_kernel=4, max_stride=3, max_dilation=2),
       st.tuples(st.integers(1, 24), st.integers(1, 24)))
def test_gradient_follows_clipping_at_any_input_size(net, input_size):
    """On small inputs the field is clipped by the borders; the gradient still matches the windows."""
    try:
        helpers.receptive_field_table(net, input_size)
    except ValueError:
        with pytest.raises(RuntimeError):
            forward_sizes(net, input_size)
        return
    assert torch.equal(gradient_mask(net, input_size), reference_mask(net, input_size))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(stacks(dims=2, max_layers=3, max_kernel=4, max_stride=3, max_dilation=3, max_pooling=True),
       st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_output_sizes_match_forward_pass_with_max_pooling(net, input_size):
    try:
        table = helpers.receptive_field_table(net, input_size)
    except ValueError:
        with pytest.raises(RuntimeError):
            forward_sizes(net, input_size)
        return
    assert forward_sizes(net, input_size)[1:] == [field.output for field in table]


def test_max_pool_has_the_geometry_of_average_pool():
    max_net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3, padding=1))
    avg_net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, padding=1))
    for m, a in zip(helpers.receptive_field_table(max_net, (20, 20)),
                    helpers.receptive_field_table(avg_net, (20, 20))):
        assert (m.size, m.jump, m.start, m.output, m.offsets) == (a.size, a.jump, a.start, a.output, a.offsets)


@pytest.mark.parametrize("kernel, pixels, output", [(3, 9, (13, 13)), (5, 25, (11, 11))])
def test_single_convolution_known_cases(kernel, pixels, output):
    net = nn.Sequential(nn.Conv2d(1, 1, kernel))
    assert helpers.receptive_field_size(net, (15, 15)) == pixels
    assert helpers.compute_receptive_field(net, (15, 15))[-1].shape[2:] == output
    assert helpers.receptive_field_table(net, (15, 15))[-1].output == output


def test_two_padded_3x3_convolutions_see_5x5():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    assert helpers.receptive_field_size(net, (15, 15)) == 25
    assert receptive_field_extent(net, (15, 15)) == (5, 5)
    assert [f.output for f in helpers.receptive_field_table(net, (15, 15))] == [(15, 15), (15, 15)]


def test_dilated_3x3_convolution_is_sparse():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=2, dilation=2))
    field = helpers.receptive_field_table(net, (15, 15))[-1]
    assert (field.size, field.pixels, field.output) == ((5, 5), 9, (15, 15))
    assert helpers.receptive_field_size(net, (15, 15)) == 9
    assert receptive_field_extent(net, (15, 15)) == (5, 5)


def test_pointwise_layers_and_same_padding_keep_the_field():
    plain = nn.Sequential(nn.Conv1d(1, 2, 3, padding="same", dilation=2), nn.Conv1d(2, 1, 5, padding="same"))
    with_relu = nn.Sequential(plain[0], nn.ReLU(), plain[1])
    fields = helpers.receptive_field_table(plain, (11,))
    assert [f.output for f in fields] == [(11,), (11,)]
    assert tuple(plain(torch.zeros(1, 1, 11)).shape[2:]) == (11,)
    assert helpers.receptive_field_table(with_relu, (11,))[2] == fields[1]
    assert fields[-1].size == (9,)
    valid = nn.Sequential(nn.Conv2d(1, 1, 3, padding="valid"))
    assert helpers.receptive_field_table(valid, (15, 15)) == helpers.receptive_field_table(
        nn.Sequential(nn.Conv2d(1, 1, 3)), (15, 15))


def test_unsupported_layers_are_rejected():
    with pytest.raises(TypeError):
        helpers.receptive_field_table(nn.Sequential(nn.Linear(3, 3)), (3,))
    with pytest.raises(TypeError):
        helpers.receptive_field_table(nn.Sequential(nn.Conv2d(1, 1, 3)), (9,))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_parameter_count_of_a_convolution(kh, kw, c_in, c_out, bias):
    net = nn.Sequential(nn.Conv2d(c_in, c_out, (kh, kw), bias=bias))
    assert helpers.parameter_count(net) == kh * kw * c_in * c_out + (c_out if bias else 0)


@cache
def rf9_networks() -> dict[str, nn.Sequential]:
    """The five 3.3 networks as the notebook builds them: its cells that fill rf9_nets, run without plots or prints."""
    cells = [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells
             if cell.cell_type == "code" and "rf9_nets[" in cell.source]
    quiet = lambda *args, **kwargs: None  # noqa: E731
    namespace = {"torch": torch, "nn": nn, "print": quiet, "plot_receptive_field": quiet,
                 "print_parameter_count": quiet, "receptive_field_size": helpers.receptive_field_size,
                 "rf9_nets": {}}
    for source in cells:
        exec(source, namespace)
    return namespace["rf9_nets"]


@pytest.mark.parametrize("name, layers, parameters, output", [
    ("One 9x9 convolution", 1, 732, (14, 14)),
    ("Many 3x3 convolutions", 4, 336, (14, 14)),
    ("With pooling", 4, 168, (7, 7)),
    ("With strided convolution", 3, 252, (7, 7)),
    ("With dilation", 2, 168, (14, 14)),
])
def test_section_3_3_networks_see_exactly_9x9(name, layers, parameters, output):
    net = rf9_networks()[name]
    assert helpers.receptive_field_size(net) == 9 * 9, "Receptive field of output pixel should be 9x9"
    assert receptive_field_extent(net) == (9, 9)
    assert (len(net), helpers.parameter_count(net)) == (layers, parameters)
    assert helpers.receptive_field_table(net, (14, 14))[-1].output == output
    assert all(layer.in_channels == layer.out_channels == 3 for layer in net if isinstance(layer, nn.Conv2d))


def test_section_3_3_summary_table_is_computed():
    assert list(rf9_networks()) == ["One 9x9 convolution", "Many 3x3 convolutions", "With pooling",
                                    "With strided convolution", "With dilation"]
    table = helpers.network_summary(rf9_networks(), (14, 14)).splitlines()
    assert table[2] == "| One 9x9 convolution | 1 | 732 | 14x14 | 9x9 (81 pixels) |"
    assert len(table) == 2 + 5
