"""The whole notebook executes top to bottom in fast mode; its answers are brief; its networks are right."""
from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

pytestmark = pytest.mark.slow

# Run in the notebook's kernel after its last cell: facts about the networks and data it defined.
PROBE = """
import json
facts = {name: helpers.parameter_count(build()) for name, build in
         [("build_net", build_net), ("build_net_dropout", build_net_dropout),
          ("build_net_batchnorm", build_net_batchnorm), ("build_resnet", build_resnet),
          ("build_net_mfcc", build_net_mfcc)]}
facts["flatten"] = dict(helpers.shape_trace(build_net(), (1, 6000)))["Flatten"][0]
facts["outputs"] = [list(build().eval()(x).shape) for build, x in
                    [(build_net, data.x[:2]), (build_net_dropout, data.x[:2]), (build_net_batchnorm, data.x[:2]),
                     (build_resnet, data.x[:2]), (build_net_mfcc, data_mfcc.x[:2])]]
facts["data"] = [list(data.x.shape), list(data_mfcc.x.shape), train_count, len(test)]
facts["runs"] = [row["Experiment"] for row in runs]
facts["as_given"] = [len(base_sgd.history), base_sgd.lr]
print(json.dumps(facts))
"""
SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(]|\s*$)")


def answers(nb) -> list[str]:
    """The text of every answer: markdown cells and the Markdown that code cells render, starting **Answer:**."""
    texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
    texts += [o.data["text/markdown"] for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if "data" in o and "text/markdown" in o.data]
    return [t[len("**Answer:**"):].strip() for t in texts if t.startswith("**Answer:**")]


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


def test_the_assignments_own_run_is_in_the_table(executed):
    _, facts = executed
    assert facts["runs"][0] == "SGD, as given (f)" and facts["as_given"][1] == 0.02
    notebook = json.loads((ROOT / "assignment3.ipynb").read_text())
    source = "".join("".join(c["source"]) for c in notebook["cells"])
    assert "helpers.epochs(num_epochs, 2), lr=lr" in source and "lr, num_epochs = 0.02, 75" in source


QUESTION = re.compile(r"\*\*\(([a-l])\) ([^*]+)")
CODE_QUESTION = re.compile(r"(Run|Use|Do the same|Define|Construct|Change|Make|Copy|Load|Update|Complete|Now train|"
                           r"Implement|Inspect|Train|For each|Does it really work)")


def test_every_question_is_answered_before_the_next():
    """A question asking for words gets a cell starting **Answer:** (markdown, or rendered by an answer
    cell) before the next question; a question asking for code gets a code cell."""
    nb = nbformat.read(ROOT / "assignment3.ipynb", as_version=4)
    pending = None
    for cell in nb.cells:
        is_answer = cell.source.startswith("**Answer:**") or "answer" in cell.metadata.get("tags", [])
        if pending and (is_answer or (cell.cell_type == "code" and pending[1] == "code")):
            pending = None
        question = QUESTION.search(cell.source) if cell.cell_type == "markdown" else None
        if question:
            assert pending is None, f"question ({pending[0]}) has no answer before the next one"
            kind = "code" if CODE_QUESTION.match(question.group(2)) else "words"
            pending = (f"{question.group(1)}) {question.group(2)[:50]}", kind)
    assert pending is None, f"question ({pending[0]}) has no answer"


def test_code_lines_fit_the_pdf_page():
    """Code the PDF shows (answer cells show only their output) fits its ~90 characters per line."""
    nb = nbformat.read(ROOT / "assignment3.ipynb", as_version=4)
    shown = [c for c in nb.cells if c.cell_type == "code" and "answer" not in c.metadata.get("tags", [])]
    long_lines = [line for c in shown for line in c.source.splitlines() if len(line) > 90]
    assert long_lines == []
