"""The README shows the numbers of the committed notebook run, not numbers typed by hand."""
from __future__ import annotations

from scripts import readme_results


def test_readme_results_table_is_the_notebooks():
    table = readme_results.notebook_results()
    assert table.startswith("| run |") and "| SGD (f) |" in table
    assert readme_results.readme_results() == table



def test_readme_recognizer_numbers_are_the_results_files():
    """The recognizer paragraphs quote results/recordings.json and the study's row for study.RECOGNIZER."""
    import json
    from pathlib import Path

    import study
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    readings = json.loads(study.RECORDINGS_FILE.read_text())
    loso = json.loads(study.RESULTS_FILE.read_text())["recipes"][study.RECOGNIZER]
    quoted = [readings["digit accuracy"], readings["sequence accuracy"], readings["split right"],
              readings["digit accuracy at the true cuts"], readings["clean recording accuracy"],
              readings["single digit accuracy"], loso["loso_mean"], min(loso["loso"].values()),
              json.loads(study.RESULTS_FILE.read_text())["screening"]["embedding+mfcc weight"]["loso_mean"],
              *(readings["per speaker"][s]["sequence accuracy"] for s in ("george", "nicolas"))]
    for value in quoted:
        assert f"{value:.1%}" in readme, f"{value:.1%}"
    assert f"{readings['sequences']} sequences ({readings['digits']} digits)" in readme
    screening = json.loads(study.RESULTS_FILE.read_text())["screening"]
    for name in ("embedding_espeak_voices", "embedding_speaker_mean", "embedding+mfcc_noise_copies",
                 "embedding_noisy_real_copies", "embedding_mel_warp",
                 "embedding_speaker_adversarial"):  # the paragraph on the variants screened and not kept
        assert f"{screening[name]['loso_mean']:.1%}" in readme, name
    alone = json.loads((study.RESULTS_FILE.parent / "recordings-embedding.json").read_text())
    assert alone["recipe"] == "embedding" and study.RECOGNIZER != "embedding"
    quoted = ", ".join(f"{alone[key]:.1%}" for key in ("digit accuracy", "sequence accuracy", "single digit accuracy"))
    assert f"{quoted} and {alone['clean recording accuracy']:.1%}" in readme.replace("\n", " ")
