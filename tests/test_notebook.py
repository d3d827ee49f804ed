"""The whole notebook executes top to bottom in fast mode; its answers are brief; its networks are right.

What a grader reads in the committed notebook (its JSON only, quick) is checked in test_hand_in.py."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT
from test_hand_in import GIVEN_CALLS, SENTENCE_END, answers

pytestmark = pytest.mark.slow

# Run in the notebook's kernel after its last cell: facts about the networks and data it defined.
PROBE = """
import json
facts = {name: helpers.parameter_count(build()) for name, build in
         [("build_net", build_net), ("build_net_dropout", build_net_dropout),
          ("build_net_batchnorm", build_net_batchnorm), ("build_resnet", build_resnet),
          ("build_plain_net", build_plain_net), ("build_net_mfcc", build_net_mfcc)]}
facts["flatten"] = dict(helpers.shape_trace(build_net(), (1, 6000)))["Flatten"][0]
facts["outputs"] = [list(build().eval()(x).shape) for build, x in
                    [(build_net, data.x[:2]), (build_net_dropout, data.x[:2]), (build_net_batchnorm, data.x[:2]),
                     (build_resnet, data.x[:2]), (build_plain_net, data.x[:2]), (build_net_mfcc, data_mfcc.x[:2])]]
shortcuts = [layer.conv3 for layer in build_resnet() if isinstance(layer, Residual)]
facts["shortcut_parameters"] = sum(helpers.parameter_count(conv) for conv in shortcuts)
facts["data"] = [list(data.x.shape), list(data_mfcc.x.shape), train_count, len(test)]
facts["runs"] = [row["run"] for row in runs]
facts["as_given"] = [[len(r.history), r.lr] for r in (base_sgd, dropout, batchnorm)]
facts["screened"] = [len(set(screen.tolist())), set(screen.tolist()).isdisjoint(test.indices)]
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def executed(fsdd_archive, monkeypatch_module):
    """The notebook run in fast mode, and the probe's facts from the same kernel."""
    monkeypatch_module.setenv("A3_FAST", "1")
    monkeypatch_module.setenv("FSDD_SOURCE", str(fsdd_archive))
    nb = nbformat.read(ROOT / "assignment3.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    probe = nb.cells.pop()
    return nb, json.loads(probe.outputs[-1].text)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_notebook_runs_without_errors_or_todos(executed):
    nb, _ = executed
    assert [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"] == []
    assert all("TODO" not in c.source for c in nb.cells)
    assert all("getsource" not in c.source for c in nb.cells if c.cell_type == "code")


def test_every_answer_is_one_or_two_sentences_of_at_most_60_words(executed):
    nb, _ = executed
    found = answers(nb)
    assert len(found) >= 25
    for text in found:
        assert 0 < len(text.split()) <= 60, text
        assert 1 <= len(SENTENCE_END.findall(text)) <= 2, text


def test_networks_defined_in_the_notebook(executed):
    _, facts = executed
    assert facts["build_net"] == facts["build_net_dropout"] == 1_532_090  # dropout adds no parameters
    assert facts["flatten"] == 11872
    assert facts["build_net_batchnorm"] == 1_532_090 + 2 * (4 + 8 + 16 + 32 + 128 + 64)
    assert facts["build_resnet"] > facts["build_net"]  # 32 * 375 inputs to the first linear layer
    assert all(shape == [2, 10] for shape in facts["outputs"])
    assert facts["data"] == [[3000, 1, 6000], [3000, 13, 74], 2000, 1000]


def test_the_normalization_is_chosen_on_training_recordings_only(executed):
    """3.5(b)'s screening trains and validates on 900 recordings, none from the test part of 3.5(e)'s split."""
    _, facts = executed
    assert facts["screened"] == [900, True]


def test_the_same_network_without_shortcuts_differs_only_in_them(executed):
    _, facts = executed
    assert facts["shortcut_parameters"] > 0
    assert facts["build_plain_net"] == facts["build_resnet"] - facts["shortcut_parameters"]


def test_the_assignments_calls_read_and_run_as_given(executed):
    """The given calls appear verbatim and train their full epochs even in fast mode (which only shortens
    every epoch to a few batches)."""
    _, facts = executed
    assert facts["runs"][0] == "SGD (f)"
    assert facts["as_given"] == [[75, 0.02], [200, 0.02], [15, 0.02]]
    source = "\n".join(c.source for c in nbformat.read(ROOT / "assignment3.ipynb", as_version=4).cells)
    for call in GIVEN_CALLS:
        assert call in source
    assert "helpers.epochs" not in source
