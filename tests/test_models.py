"""Models, batch loading and training of sections 3.5-3.9 (shapes, parameter counts, real data)."""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import helpers
from conftest import ROOT, nb

CPU = torch.device("cpu")


def conv_count(c_in: int, c_out: int, k: int) -> int:
    """Weights and biases of a Conv1d."""
    return c_in * c_out * k + c_out


def linear_count(n_in: int, n_out: int) -> int:
    """Weights and biases of a Linear layer."""
    return n_in * n_out + n_out


HEAD = linear_count(11872, 128) + linear_count(128, 64) + linear_count(64, 10)
CONVS = conv_count(1, 4, 5) + conv_count(4, 8, 5) + conv_count(8, 16, 5) + conv_count(16, 32, 5)


def residual_count(c_in: int, c_out: int, shortcut: bool) -> int:
    """Two kernel-5 convolutions, two batch norms (scale and shift) and maybe a 1x1 convolution."""
    return (conv_count(c_in, c_out, 5) + conv_count(c_out, c_out, 5) + 2 * 2 * c_out
            + (conv_count(c_in, c_out, 1) if shortcut else 0))


@pytest.fixture
def subset(recordings, tmp_path):
    """A folder with the first `n` recordings of every digit (sorted names, so the same every time)."""
    def make(n: int):
        for digit in range(10):
            for wav in sorted(recordings.glob(f"{digit}_*.wav"))[:n]:
                shutil.copy(wav, tmp_path)
        return tmp_path
    return make


def test_base_net_shapes_and_parameter_count():
    net = nb.build_net()
    assert net(torch.zeros(3, 1, 6000)).shape == (3, 10)
    assert helpers.parameter_count(net) == CONVS + HEAD == 1_532_090


def test_shape_trace_derives_11872():
    trace = helpers.shape_trace(nb.build_net(), (1, 6000))
    lengths = [shape[-1] for name, shape in trace if name in ("input", "Conv1d", "AvgPool1d")]
    assert lengths == [6000, 5996, 2998, 2994, 1497, 1493, 746, 742, 371]
    assert dict(trace)["Flatten"] == (11872,)
    assert helpers.shape_trace(nb.build_net()[:-6], (1, 6000))[-1][1] == (32, 371)


def test_shape_trace_leaves_batch_norm_statistics_alone():
    net = nb.build_net_batchnorm()
    helpers.shape_trace(net, (1, 6000))
    assert net.training
    # exact: untouched statistics keep their initial zeros and ones
    assert torch.equal(net[1].running_mean, torch.zeros(4)) and torch.equal(net[1].running_var, torch.ones(4))


def test_dense_parameter_count_replaces_convolutions_by_linear_layers():
    sizes = [6000, 4 * 5996, 4 * 2998, 8 * 2994, 8 * 1497, 16 * 1493, 16 * 746, 32 * 742]
    dense = sum(linear_count(sizes[i], sizes[i + 1]) for i in (0, 2, 4, 6))
    assert helpers.dense_parameter_count(nb.build_net(), (1, 6000)) == dense + HEAD
    assert dense + HEAD > 600 * helpers.parameter_count(nb.build_net())


def test_dropout_net_has_base_parameters_and_drops_only_in_training():
    net = nb.build_net_dropout()
    assert helpers.parameter_count(net) == CONVS + HEAD
    assert sum(isinstance(layer, nn.Dropout) for layer in net) == 2
    x = torch.randn(4, 1, 6000)
    net.eval()
    assert torch.equal(net(x), net(x))  # exact: the same input twice in one process
    net.train()
    assert not torch.equal(net(x), net(x))


def test_batchnorm_net_normalizes_every_hidden_layer():
    net = nb.build_net_batchnorm()
    assert net(torch.zeros(3, 1, 6000)).shape == (3, 10)
    norms = [layer.num_features for layer in net if isinstance(layer, nn.BatchNorm1d)]
    assert norms == [4, 8, 16, 32, 128, 64]
    assert helpers.parameter_count(net) == CONVS + HEAD + 2 * sum(norms)


def test_residual_with_1x1_shortcut_changes_channels_and_stride():
    block = nb.Residual(4, 8, use_1x1conv=True, strides=2)
    assert block(torch.randn(2, 4, 100)).shape == (2, 8, 50)
    assert helpers.parameter_count(block) == residual_count(4, 8, shortcut=True)


def test_residual_without_shortcut_conv_adds_its_input():
    block = nb.Residual(8, 8)
    assert block.conv3 is None
    assert helpers.parameter_count(block) == residual_count(8, 8, shortcut=False)
    x = torch.randn(2, 8, 100)
    assert block(x).shape == x.shape
    nn.init.zeros_(block.bn2.weight)  # the convolution branch now outputs bn2's bias: zero
    assert torch.equal(block(x), torch.relu(x))  # exact on any CPU: 0 * finite + 0 = 0, then x + 0 = x


def test_resnet_shapes_and_parameter_count():
    net = nb.build_resnet()
    assert net(torch.zeros(2, 1, 6000)).shape == (2, 10)
    blocks = [residual_count(1, 4, True), residual_count(4, 8, True), residual_count(8, 16, True),
              residual_count(16, 32, True)]
    head = linear_count(32 * 375, 128) + linear_count(128, 64) + linear_count(64, 10)  # 6000 / 2**4 = 375
    assert helpers.parameter_count(net) == sum(blocks) + head


def test_mfcc_net_shapes_and_parameter_count():
    net = nb.build_net_mfcc()
    assert net(torch.zeros(2, 13, 74)).shape == (2, 10)
    length = ((74 - 4) // 2 - 4) // 2  # two valid kernel-5 convolutions, each followed by pooling
    expected = (2 * 13 + conv_count(13, 32, 5) + 2 * 32 + conv_count(32, 64, 5) + 2 * 64
                + linear_count(64 * length, 128) + 2 * 128 + linear_count(128, 10))
    assert helpers.parameter_count(net) == expected


def test_the_network_without_shortcuts_has_the_resnets_layers_and_is_deeper_than_the_mfcc_network():
    """3.8(g) compares it with the resnet (the same layers but the shortcuts' 1x1 convolutions); 3.9(d) calls
    it deeper than the MFCC network (8 convolutions against 2; 10 times the parameters and more)."""
    plain, resnet = nb.build_plain_net(), nb.build_resnet()
    assert plain(torch.zeros(2, 1, 6000)).shape == (2, 10)
    shortcuts = sum(helpers.parameter_count(block.conv3) for block in resnet if isinstance(block, nb.Residual))
    assert helpers.parameter_count(plain) == helpers.parameter_count(resnet) - shortcuts
    assert helpers.parameter_count(plain) >= 10 * helpers.parameter_count(nb.build_net_mfcc())
    def convolutions(net):
        return sum(isinstance(m, nn.Conv1d) for m in net.modules())
    assert convolutions(plain) == 8 > convolutions(nb.build_net_mfcc()) == 2  # 3.9(d): "the deeper network"


def test_normalizations():
    x = np.array([0.0, 0.5, -0.25, 0.25], dtype=np.float32)
    standard = nb.NORMALIZATIONS["standardize"](x)
    assert abs(standard.mean()) < 1e-6 and abs(standard.std() - 1) < 1e-4
    assert np.allclose(nb.NORMALIZATIONS["peak"](x), x / 0.5)
    assert np.allclose(nb.NORMALIZATIONS["unit"](x), [0.5, 0.75, 0.375, 0.625])
    assert np.array_equal(nb.NORMALIZATIONS["none"](x), x)


def test_training_indices_are_the_training_part_of_the_notebooks_split():
    data = torch.utils.data.TensorDataset(torch.zeros(3000, 1))
    train, test = torch.utils.data.random_split(data, [2000, 1000], generator=torch.Generator().manual_seed(0))
    chosen = helpers.training_indices(3000, 2 / 3, seed=0)
    assert chosen == train.indices and not set(chosen) & set(test.indices)
    assert helpers.training_indices(3000, 2 / 3, seed=1) != chosen


def test_compare_normalizations_trains_once_per_normalization():
    torch.manual_seed(0)
    raw = np.random.randn(30, 6000).astype(np.float32) * 0.01
    calls = []
    def build():
        calls.append(1)
        return nb.build_net()
    rows = helpers.compare_normalizations(raw, torch.arange(30) % 10, nb.NORMALIZATIONS, build, num_epochs=1,
                                          lr=1e-3, train_size=20, batch_size=10)
    assert [row["normalization"] for row in rows] == list(nb.NORMALIZATIONS) and len(calls) == 4
    by_name = {row["normalization"]: row for row in rows}
    assert by_name["unit"]["min"] >= 0 and by_name["peak"]["max"] <= 1
    assert by_name["none"]["mean amplitude"] == pytest.approx(np.abs(raw).mean(), rel=1e-5)


def test_screening_net_shapes():
    net = helpers.build_screening_net()
    assert [shape for _, shape in helpers.shape_trace(net, (1, 6000))][1:] == [
        (16, 372), (16, 372), (32, 92), (32, 92), (32 * 92,), (10,)]


def test_time_shift_moves_signals_and_fills_zeros():
    x = torch.arange(1.0, 7.0).repeat(3, 1, 1)  # three copies of [[1, ..., 6]]
    shifted = helpers.time_shift(x, torch.tensor([2, 0, -1]))
    assert shifted.tolist() == [[[0, 0, 1, 2, 3, 4]], [[1, 2, 3, 4, 5, 6]], [[2, 3, 4, 5, 6, 0]]]


def test_batch_loader_visits_every_sample_once_per_epoch():
    data = torch.utils.data.TensorDataset(torch.arange(10.0)[:, None, None], torch.arange(10))
    loader = helpers.BatchLoader(data, batch_size=4, shuffle=True)
    assert len(loader) == 3
    torch.manual_seed(0)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()  # a new order every epoch
    assert all(torch.equal(x[:, 0, 0], y.float()) for x, y in loader)  # x stays paired with y
    torch.manual_seed(0)
    assert torch.cat([y for _, y in loader]).tolist() == first.tolist()  # seeded: reproducible
    assert [y.tolist() for _, y in helpers.BatchLoader(data, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batch_loader_slices_a_random_split_subset(recordings, subset):
    data = nb.SpokenDigits(subset(3))
    train, test = torch.utils.data.random_split(data, [20, 10], generator=torch.Generator().manual_seed(0))
    x, y = helpers.tensors(test)
    assert x.shape == (10, 1, 6000)
    assert all(torch.equal(x[i], data[j][0]) and y[i] == data[j][1] for i, j in enumerate(test.indices))


def test_mfcc_dataset_shape_on_real_recordings(subset):
    data = nb.SpokenDigitsMFCC(subset(2))
    assert len(data) == 20 and sorted(set(data.y.tolist())) == list(range(10))
    assert data.x.shape == (20, 13, 74) and data.x.dtype == torch.float32
    assert data[0][0].shape == (13, 74) and torch.isfinite(data.x).all()


@pytest.mark.slow
def test_short_training_on_real_recordings_lowers_the_loss(subset):
    data = nb.SpokenDigits(subset(30))  # 300 recordings
    torch.manual_seed(0)
    net = nb.build_net()
    with torch.no_grad():
        initial = nn.functional.cross_entropy(net(data.x), data.y).item()
    loader = helpers.BatchLoader(data, batch_size=32, shuffle=True)
    result = helpers.train(net, loader, loader, num_epochs=4, lr=3e-3, device=CPU, optimizer="adamw",
                           animate=False)
    with torch.no_grad():
        final = nn.functional.cross_entropy(net.eval()(data.x), data.y).item()
    assert len(result.history) == 4 and result.seconds > 0 and result.lr == 3e-3
    assert final < 0.7 * initial
    assert result.test_acc > 0.4  # chance is 0.1


@pytest.mark.parametrize("bf16", [False, True])
def test_training_lowers_the_loss_in_float32_and_bfloat16(subset, bf16):
    data = nb.SpokenDigits(subset(10))  # 100 recordings
    torch.manual_seed(0)
    net = nb.build_net_batchnorm()
    loader = helpers.BatchLoader(data, batch_size=20, shuffle=True)
    result = helpers.train(net, loader, loader, num_epochs=4, lr=1e-2, device=CPU, optimizer="adamw",
                           bf16=bf16, animate=False)
    losses = [loss for loss, _, _ in result.history]
    assert losses[-1] < 0.5 * losses[0]


def test_live_animator_redraws_at_most_every_interval(monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda fig: shown.append(fig))
    monkeypatch.setattr(IPython.display, "clear_output", lambda wait: None)
    animator = helpers.LiveAnimator("epoch", "value", ["loss", "acc"], [1, 4], interval=3600)
    for epoch in range(1, 4):
        animator.add(epoch, (1 / epoch, None if epoch == 2 else 0.5))
    assert shown == [] and animator.X == [[1, 2, 3], [1, 3]] and animator.Y == [[1, 0.5, 1 / 3], [0.5, 0.5]]
    animator.draw()
    assert shown == [animator.fig] and len(animator.axes[0].lines) == 2
    axes = animator.axes[0]  # labels every 0.5, grid lines every 0.1: accuracies readable off the curve
    low, high = axes.get_ylim()
    ticks = np.sort([t for t in [*axes.get_yticks(), *axes.get_yticks(minor=True)] if low <= t <= high])
    assert np.allclose(np.diff(axes.get_yticks()), 0.5) and np.allclose(np.diff(ticks), 0.1)
    assert all(tick.gridline.get_visible() for tick in axes.yaxis.get_minor_ticks())
    animator.add(4, (0.2, 0.6), last=True)  # the last point is always drawn, once
    assert len(shown) == 2
    animator.interval = 0
    animator.add(5, (0.1, 0.7))
    assert len(shown) == 3


def test_train_records_where_its_time_goes():
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 1, 20), torch.arange(64) % 10)
    net = nn.Sequential(nn.Conv1d(1, 2, 5), nn.Flatten(), nn.Linear(32, 10))
    result = helpers.train(net, helpers.BatchLoader(data, 16, shuffle=True), helpers.BatchLoader(data, 16), 2, 0.1,
                           device=CPU, animate=False)
    assert set(result.timing) == {"data", "steps", "evaluation", "plot"} and result.timing["plot"] == 0
    assert 0 < sum(result.timing.values()) <= result.seconds
    assert result.test_acc_after(2) == result.test_acc and result.schedule is None


@pytest.mark.parametrize("bf16, precision", [(False, "float32"), (True, "bfloat16")])
def test_train_prints_the_precision_it_computed_in(capsys, monkeypatch, bf16, precision):
    """The last line a run prints names its precision, so a reader of the notebook sees whether bfloat16 was on."""
    monkeypatch.setattr(helpers, "training_plot", lambda title, epochs: None)  # no live plot in a test
    data = torch.utils.data.TensorDataset(torch.randn(32, 1, 20), torch.arange(32) % 10)
    net = nn.Sequential(nn.Conv1d(1, 2, 5), nn.Flatten(), nn.Linear(32, 10))
    helpers.train(net, helpers.BatchLoader(data, 16), helpers.BatchLoader(data, 16), 1, 0.1, device=CPU, bf16=bf16)
    assert capsys.readouterr().out.splitlines()[-1].endswith(f" examples/sec on cpu, {precision}")


def test_test_noise_is_two_standard_errors():
    assert helpers.test_noise(0.5, 1000) == pytest.approx(2 * 0.5 / 1000 ** 0.5)
    assert helpers.test_noise(0.56, 1000) == pytest.approx(0.0314, abs=1e-4)  # the given run: 3 points
    assert helpers.test_noise(1.0, 1000) == 0.0


def test_the_noise_of_a_difference_adds_both_runs_noise():
    assert helpers.difference_noise(0.5, 0.5, 1000) == pytest.approx(2 ** 0.5 * helpers.test_noise(0.5, 1000))
    assert helpers.difference_noise(0.924, 0.961, 1000) == pytest.approx(0.0208, abs=1e-4)  # 3.8(g): 2.1 points
    assert helpers.difference_noise(1.0, 1.0, 1000) == 0.0


def test_converged_verdicts():
    def result(test_accs, train_acc=0.9):
        return helpers.TrainResult(0.5, train_acc, test_accs[-1], 1.0, 0.01,
                                   [(0.5, train_acc, acc) for acc in test_accs])
    n = 1000  # noise at p = 0.8: 2 * sqrt(0.8 * 0.2 / 1000) = 0.025
    assert helpers.converged(result([0.1] * 9, train_acc=0.1), test_size=n) == "no (chance)"
    assert helpers.converged(result([0.5] * 8), test_size=n) == "no (too few epochs)"
    # the last third (3 of 9 epochs) rises 0.05 per epoch: +0.100 over it, 4 times the noise
    assert helpers.converged(result([0.3, 0.5, 0.6, 0.65, 0.7, 0.75, 0.7, 0.75, 0.8]), test_size=n) == \
        "no (+0.100, noise 0.025)"
    # a steep rise before the last third does not count; a flat end does
    assert helpers.converged(result([0.1, 0.2, 0.4, 0.6, 0.79, 0.8, 0.8, 0.8, 0.8]), test_size=n) == \
        "yes (+0.000, noise 0.025)"
    # one epoch's dip in a flat end does not tilt the line (a least-squares fit would: +0.02)
    dip = [0.5, 0.7, 0.8, 0.9, 0.95, 0.96, 0.9, 0.96, 0.96, 0.96, 0.96, 0.96]
    assert helpers.converged(result(dip), test_size=n) == "yes (+0.000, noise 0.012)"
    # epoch-to-epoch noise around a flat line: the fitted line moves little
    noisy = [0.4, 0.6, 0.7, 0.8, 0.82, 0.78, 0.81, 0.79, 0.8, 0.78, 0.82, 0.8]
    assert helpers.converged(result(noisy), test_size=n).startswith("yes")
    # the same change is noise on 100 test recordings but not on 10,000
    slow = [0.5, 0.6, 0.7, 0.75, 0.76, 0.77, 0.78, 0.79, 0.8]
    assert helpers.converged(result(slow), test_size=100).startswith("yes")
    assert helpers.converged(result(slow), test_size=10_000).startswith("no")


def test_converged_judges_a_scheduled_run_by_a_longer_one():
    def run(test_accs):
        return helpers.TrainResult(0.1, 0.9, test_accs[-1], 1.0, 0.01, [(0.1, 0.9, a) for a in test_accs], "onecycle")
    short = run([0.5, 0.8, 0.85, 0.86])
    with pytest.raises(ValueError, match="twice as long"):
        helpers.converged(short, test_size=1000)  # its flat end says nothing: the learning rate went to zero
    with pytest.raises(ValueError, match="twice as long"):
        helpers.converged(short, longer=run([0.5, 0.8, 0.85, 0.9, 0.9]), test_size=1000)
    # noise at p = 0.86: 2 * sqrt(0.86 * 0.14 / 1000) = 0.022
    assert helpers.converged(short, longer=run([0.5] * 7 + [0.87]), test_size=1000) == "yes (2x +0.010, noise 0.022)"
    assert helpers.converged(short, longer=run([0.5] * 7 + [0.91]), test_size=1000) == "no (2x +0.050, noise 0.022)"


def test_markdown_table():
    table = helpers.markdown_table([{"net": "base", "acc": 0.71234}, {"net": "bn", "acc": 0.9}])
    assert table.splitlines() == ["| net | acc |", "| ---- | ----- |", "| base | 0.712 |", "| bn | 0.900 |"]
    # the dashes follow the longest cell of each column: pandoc sizes wrapped columns by them
    wide = helpers.markdown_table([{"run": "SGD, as given (f)", "converged?": "no (loss -0.05)", "lr": 0.02}])
    assert wide.splitlines()[1] == "| " + " | ".join(["-" * 17, "-" * 15, "-" * 5]) + " |"


def test_markdown_table_escapes_pipes_inside_cells():
    table = helpers.markdown_table([{"mean |x|": "a|b"}])
    assert table.splitlines() == [r"| mean \|x\| |", "| ---------- |", r"| a\|b |"]


def given_train():
    """The assignment's train function (d2l 7.6), exactly as the notebook shows it."""
    import json

    from d2l import torch as d2l

    from scripts.notebook_definitions import NOTEBOOK
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code"
                  and "".join(c["source"]).startswith("def train(net, train_iter, test_iter, num_epochs, lr, device"))
    namespace = {"d2l": d2l, "torch": torch, "nn": nn}
    exec(source, namespace)
    return namespace["train"]


def test_helpers_train_makes_the_assignments_updates_in_float32(monkeypatch):
    """On the same unshuffled batches (the given DataLoader) and in float32, helpers.train ends with the same
    weights as the assignment's train: the same SGD updates (its loader's shuffling and bfloat16 are the only
    changes to them; the plot and the eval-mode train accuracy change only what is shown)."""
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: None)  # d2l's live plot
    monkeypatch.setattr(IPython.display, "clear_output", lambda *args, **kwargs: None)
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(96, 1, 40), torch.arange(96) % 10)
    loader = torch.utils.data.DataLoader(data, batch_size=16)

    def build():
        torch.manual_seed(1)
        return nn.Sequential(nn.Conv1d(1, 4, 5), nn.ReLU(), nn.AvgPool1d(2, 2), nn.Flatten(),
                             nn.Linear(4 * 18, 10))
    given, ours = build(), build()
    given_train()(given, loader, loader, num_epochs=3, lr=0.1, device=CPU)
    helpers.train(ours, loader, loader, num_epochs=3, lr=0.1, device=CPU, bf16=False, animate=False)
    for (name, a), b in zip(given.named_parameters(), ours.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert not all(torch.equal(a, b) for a, b in zip(build().parameters(), ours.parameters()))  # it trained


def test_a_shorter_sgd_run_is_the_start_of_a_longer_one():
    """tools/verdict_stability.py judges n epochs by the first n of a longer run (constant-rate SGD): the same
    updates, so the same history and verdict as a run of n epochs."""
    spec = importlib.util.spec_from_file_location("verdict_stability", ROOT / "tools" / "verdict_stability.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    data = torch.utils.data.TensorDataset(torch.randn(64, 1, 20), torch.arange(64) % 10)
    runs = {}
    for epochs in (9, 15):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv1d(1, 2, 5), nn.Flatten(), nn.Linear(32, 10))
        runs[epochs] = helpers.train(net, helpers.BatchLoader(data, 16, shuffle=True), helpers.BatchLoader(data, 16),
                                     epochs, 0.1, device=CPU, bf16=False, animate=False)
    shorter = tool.first_epochs(runs[15], 9)
    assert shorter.history == runs[9].history
    assert shorter.test_acc == runs[9].test_acc
    assert helpers.converged(shorter, test_size=64) == helpers.converged(runs[9], test_size=64)


def test_a_training_plot_names_the_network_by_its_layers():
    conv, linear = nn.Conv1d(1, 4, 5), nn.Linear(4, 10)
    assert helpers.network_kind(nn.Sequential(conv, nn.ReLU(), nn.Flatten(), linear)) == "CNN"
    assert helpers.network_kind(nn.Sequential(conv, nn.Dropout(0.5), linear)) == "CNN with dropout"
    assert helpers.network_kind(nn.Sequential(linear, nn.BatchNorm1d(10))) == "MLP with batch norm"
    assert helpers.network_kind(nn.Sequential(conv, nn.BatchNorm1d(4), nn.Dropout(), linear)) == \
        "CNN with dropout and batch norm"
