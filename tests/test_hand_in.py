"""The committed notebook as a grader reads it (its JSON only, no kernel: quick): every question answered before
the next, answers of one or two sentences, no repository text, lines that fit the PDF, the given calls verbatim,
and the conditions every worded conclusion rests on, held with a margin."""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT
from scripts import readme_results

HIDDEN_INPUT = {"answer", "hide-input"}  # scripts/nbconvert_config.py: the PDF shows only their output
SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(]|\s*$)")
GIVEN_CALLS = ["train(build_net(), train_iter, test_iter, num_epochs=75, lr=0.02)",
               "train(build_net_dropout(), train_iter, test_iter, num_epochs=200, lr=0.02)",
               "train(build_net_batchnorm(), train_iter, test_iter, num_epochs=15, lr=0.02)"]


def answers(nb) -> list[str]:
    """The text of every answer: markdown cells and the Markdown that code cells render, starting **Answer:**."""
    texts = [c.source for c in nb.cells if c.cell_type == "markdown"]
    texts += [o.data["text/markdown"] for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if "data" in o and "text/markdown" in o.data]
    return [t[len("**Answer:**"):].strip() for t in texts if t.startswith("**Answer:**")]


def test_every_committed_answer_is_one_or_two_sentences_of_at_most_60_words():
    found = answers(committed())
    assert len(found) >= 25
    for text in found:
        assert 0 < len(text.split()) <= 60, text
        assert 1 <= len(SENTENCE_END.findall(text)) <= 2, text


def test_the_given_calls_read_as_given():
    source = "\n".join(c.source for c in committed().cells)
    assert [call for call in GIVEN_CALLS if call not in source] == [] and "helpers.epochs" not in source


QUESTION = re.compile(r"\*\*\(([a-l])\) ([^*]+)")
CODE_QUESTION = re.compile(r"(Run|Use|Do the same|Define|Construct|Change|Make|Copy|Load|Update|Complete|Now train|"
                           r"Implement|Inspect|Train|For each|Does it really work)")


def test_every_question_is_answered_before_the_next():
    """A question asking for words gets a cell starting **Answer:** (markdown, or rendered by an answer
    cell) before the next question; a question asking for code gets a code cell."""
    nb = committed()
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
    """Code the PDF shows (answer and hide-input cells show only their output) fits its ~90 characters per line."""
    nb = committed()
    shown = [c for c in nb.cells if c.cell_type == "code" and not HIDDEN_INPUT & set(c.metadata.get("tags", []))]
    long_lines = [line for c in shown for line in c.source.splitlines() if len(line) > 90]
    assert long_lines == []


# ---------------------------------------------------------------------------
# The committed notebook as the PDF shows it, and the conclusions its answers draw

REPOSITORY_WORDS = ["helpers.epochs", "A3_", "import study", "tools/", "object>", "helpers.py", "study.py",
                    "CPU threads", "report_progress"]


# The notebook checked: the committed one, or another export (A3_NOTEBOOK=path, e.g. one run with A3_BF16=0)
NOTEBOOK = Path(os.environ.get("A3_NOTEBOOK", ROOT / "assignment3.ipynb"))


def committed():
    return nbformat.read(NOTEBOOK, as_version=4)


def shown_text(nb) -> list[str]:
    """What the PDF prints: markdown, visible code, and every output but an audio player's repr."""
    texts = [c.source for c in nb.cells
             if c.cell_type == "markdown" or not HIDDEN_INPUT & set(c.metadata.get("tags", []))]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "<audio" in data.get("text/html", ""):
                continue
            # the PDF renders Markdown where an output has it, else the plain text
            texts.append(output.get("text", "") + data.get("text/markdown", data.get("text/plain", "")))
    return texts


def test_the_hand_in_shows_no_repository_text():
    shown = "\n".join(shown_text(committed()))
    assert [word for word in REPOSITORY_WORDS if word in shown] == []


def test_printed_output_lines_fit_the_page():
    """Printed outputs (not tables, which pandoc wraps in their cells) stay within 120 characters: the PDF
    prints them unwrapped in scriptsize, about 130 characters to its line."""
    nb = committed()
    lines = [line for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream"
             for line in o.text.splitlines()]
    assert lines and [line for line in lines if len(line) > 120] == []


def runs_table() -> dict[str, dict[str, str]]:
    """Every run the checked notebook shows in its run tables (readme_results joins them): name -> row."""
    rows = [[x.strip() for x in line.strip().strip("|").split("|")]
            for line in readme_results.notebook_results(NOTEBOOK).splitlines()]
    return {row[0]: dict(zip(rows[0], row)) for row in rows[2:]}


VERDICT = re.compile(r"(yes|no) \((?:2x )?([+-]\d\.\d+), noise (\d\.\d+)\)")


def verdict(row: dict[str, str]) -> tuple[bool, float, float]:
    """(converged, change, noise) from a row's *converged?* cell."""
    converged, change, noise = VERDICT.fullmatch(row["converged?"]).groups()
    return converged == "yes", float(change), float(noise)


def noise(p: float) -> float:
    """Two standard errors of an accuracy on the 1,000 test recordings."""
    return 2 * (p * (1 - p) / 1000) ** 0.5


ANSWERED_RUNS = ["SGD (f)", "SGD, george left out", "dropout, SGD (a)", "MLP",
                 "MLP, dropout", "MLP, batch norm", "resnet, SGD (f)", "no shortcuts, SGD", "MFCC, SGD"]


@pytest.mark.parametrize("name", ANSWERED_RUNS)
def test_the_verdicts_the_answers_rest_on_hold_with_a_margin(name):
    """Each run an answer relies on converged by at least a quarter of the noise from the threshold, so another
    CPU's numbers do not flip a verdict that an answer's wording depends on."""
    converged, change, limit = verdict(runs_table()[name])
    assert converged, name
    assert abs(abs(change) - limit) >= limit / 4, name


def printed(nb, pattern: str) -> tuple[float, ...]:
    """The numbers that `pattern` captures in the first printed (or rendered Markdown) output it matches."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            match = re.search(pattern, output.get("text", "") + output.get("data", {}).get("text/markdown", ""))
            if match:
                return tuple(map(float, match.groups()))
    raise AssertionError(f"no printed output matches {pattern}")


def test_the_comparisons_the_answers_draw_hold_with_a_margin():
    """Every comparison an answer words (higher, lower, within the noise) is clear of its threshold by at least
    the test set's noise, or for a within-noise verdict by half of it; comparisons of means of the last 10
    epochs use the noise of a difference, sqrt(2) times one run's."""
    nb = committed()
    table = runs_table()
    acc = {name: (float(row["train acc"]), float(row["test acc"])) for name, row in table.items()}
    last10 = {name: float(row["test acc, last 10"]) for name, row in table.items()}
    base_fit, base = acc["SGD (f)"]  # 3.6(g) is its verdict, checked above
    assert base_fit - base > 0.10 + noise(base)  # 3.7(a): overfitting (a gap over 10 points)
    assert base < 0.99 - noise(base) and (base + noise(base)) ** 4 < 0.5  # 3.7(b): no; a PIN mostly misread
    assert base_fit > 0.99  # 3.7(c): fits its training recordings
    seen = printed(nb, r"george (\d\.\d+)")[0]  # 3.7(e): george's ~170 test recordings of the random split
    unseen = acc["SGD, george left out"][1]  # all 500 of his recordings
    assert seen - unseen >= 2 * ((seen * (1 - seen) / 150 + unseen * (1 - unseen) / 500) ** 0.5) + noise(unseen)
    drop_fit, drop = acc["dropout, SGD (a)"]
    assert abs((base_fit - base) - (drop_fit - drop)) >= noise(drop)  # 3.8(b): the gap narrows (or widens)
    drop_mean, base_mean = last10["dropout, SGD (a)"], last10["SGD (f)"]
    assert drop_fit > 0.99 and drop_mean - base_mean >= noise(base_mean)  # 3.8(b): both fit 100 %, accuracy rises
    mlp = last10["MLP"]
    for other in ("MLP, dropout", "MLP, batch norm"):  # 3.8(b), 3.8(d): no change beyond the noise on the MLP
        assert abs(last10[other] - mlp) <= 2 ** 0.5 * noise(mlp) / 2, other
    resnet, plain = last10["resnet, SGD (f)"], last10["no shortcuts, SGD"]
    assert resnet - plain <= 2 ** 0.5 * noise(plain) / 2  # 3.8(g): the shortcuts do not help
    assert plain - resnet >= 2 ** 0.5 * noise(resnet)  # 3.8(g): without them the network does better
    assert min(resnet, plain) - base >= noise(base)  # 3.8(g): both gain over the base network
    base_then, batchnorm = printed(nb, r"test acc (\d\.\d+), with batch normalization (\d\.\d+)")
    assert abs(batchnorm - base_then) >= noise(base_then)  # 3.8(d): at equal epochs
    batchnorm_end = acc["batch norm, SGD (c)"][1]
    assert batchnorm_end - base_mean >= 2 ** 0.5 * noise(base_mean)  # 3.8(d): tests higher than the converged base
    mlp_then, mlp_bn_then = printed(nb, r"MLP test acc (\d\.\d+), with batch normalization (\d\.\d+)")
    assert abs(mlp_bn_then - mlp_then) <= 2 ** 0.5 * noise(mlp_then) / 2  # 3.8(d): not on the MLP, at equal epochs
    assert last10["MFCC, SGD"] - plain >= 2 ** 0.5 * noise(plain)  # 3.9(d): the same SGD, MFCCs do better
    assert min(acc["MFCC, SGD"][0], acc["no shortcuts, SGD"][0]) >= 0.99  # 3.9(d): both fit their training data
    difference, moved = printed(nb, r"differ by at most ([\d.e+-]+) after 2 epochs \(training moved them up to "
                                    r"([\d.e+-]+)\)")
    assert difference <= 1e-4 * moved  # 3.6: helpers.train makes the given train's updates (float32, same batches)


def test_the_normalization_chosen_in_3_5_b_holds_with_a_margin():
    """3.5(b) standardizes: on the 300 validation recordings it does better than int16 / 32768 and [0, 1] by at
    least the noise of a difference, and no other candidate does better beyond that noise."""
    for cell in committed().cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown", "")
            if text.startswith("| normalization |"):
                rows = [[x.strip() for x in line.strip("|").split("|")] for line in text.splitlines()]
                acc = {row[0]: float(row[rows[0].index("validation acc")]) for row in rows[2:]}
                margin = 2 ** 0.5 * 2 * (acc["standardize"] * (1 - acc["standardize"]) / 300) ** 0.5
                assert acc["standardize"] - max(acc["none"], acc["unit"]) >= margin
                assert max(acc.values()) - acc["standardize"] <= margin
                return
    raise AssertionError("the committed notebook shows no screening of normalizations")


def test_images_in_figures_are_embedded_with_many_pixels_per_data_pixel():
    """3.4(c)'s 15x15 outputs are embedded at 20 or more image pixels per data pixel (300 dpi), so a PDF
    viewer that smooths images (rsvg-convert marks every one for interpolation) cannot blur their pixels."""
    import base64
    import struct
    svgs = [o.data["image/svg+xml"] for c in committed().cells if "plt.imshow" in c.source
            for o in c.get("outputs", []) if "image/svg+xml" in o.get("data", {})]
    pngs = [base64.b64decode(data) for svg in svgs
            for data in re.findall(r'xlink:href="data:image/png;base64,\s*([^"]+)"', svg)]
    assert len(pngs) == 5  # layers 5, 10, ..., 25
    for png in pngs:
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR size
        assert min(width, height) >= 20 * 15
