"""The study (study.py): speaker folds, official split, augmentations, the networks, the results file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from python_speech_features.base import mel2hz

import helpers
import study

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


@pytest.fixture(scope="module")
def fsdd_labels(recordings) -> tuple[list[str], list[int]]:
    """Speaker and take of every real recording, in SpokenDigits order."""
    parsed = [helpers.parse_file_name(f) for f in sorted(recordings.glob("*.wav"))]
    return [speaker for _, speaker, _ in parsed], [index for _, _, index in parsed]


def test_speaker_folds_leave_each_speaker_out_once(fsdd_labels):
    speakers, _ = fsdd_labels
    folds = study.speaker_folds(speakers)
    assert [speaker for speaker, _, _ in folds] == SPEAKERS
    tested = torch.cat([test for _, _, test in folds])
    assert sorted(tested.tolist()) == list(range(3000))  # every recording tested exactly once
    for speaker, train, test in folds:
        assert {speakers[i] for i in test.tolist()} == {speaker}
        assert speaker not in {speakers[i] for i in train.tolist()}
        assert len(train) + len(test) == 3000 and len(test) == 500


def test_official_split_tests_takes_0_to_4(fsdd_labels):
    _, indices = fsdd_labels
    train, test = study.official_split(indices)
    assert (len(train), len(test)) == (2700, 300)  # 5 takes x 10 digits x 6 speakers are tested
    assert all(indices[i] < 5 for i in test.tolist()) and all(indices[i] >= 5 for i in train.tolist())
    assert set(train.tolist()).isdisjoint(test.tolist())


def test_random_split_indices_match_random_split():
    train, test = study.random_split_indices(3000, 2000, seed=7)
    subset, _ = torch.utils.data.random_split(torch.arange(3000), [2000, 1000],
                                              generator=torch.Generator().manual_seed(7))
    assert train.tolist() == subset.indices and len(test) == 1000
    assert sorted(train.tolist() + test.tolist()) == list(range(3000))


def conv(i: int, o: int, k: int) -> int:
    """Weights and biases of Conv1d(i, o, k) followed by BatchNorm1d(o)."""
    return i * o * k + o + 2 * o


HEAD = conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3) + conv(64, 128, 3) + 128 * 10 + 10  # gap_head after its first conv


@pytest.mark.parametrize("build, shape, params", [
    (study.build_net_waveform, (1, 6000), conv(1, 64, 80) + conv(64, 64, 3) + conv(64, 128, 3) + conv(128, 128, 3) + 1290),
    (study.build_net_filterbank, (1, 6000), 40 * 101 + conv(40, 32, 3) + HEAD),  # filters: no bias
    (study.build_net_mfcc_gap, (13, 74), conv(13, 32, 3) + HEAD),
    (study.build_net_logmel_gap, (study.MELS, study.FRAMES), conv(study.MELS, 32, 3) + HEAD),
    (study.build_net_cepstral_gap, (study.MELS, study.FRAMES), conv(13, 32, 3) + HEAD),  # the DCT: a buffer
    (study.build_net_mfcc_norm_gap, (13, 74), conv(13, 32, 3) + HEAD),
])
def test_networks_map_inputs_to_ten_logits(build, shape, params):
    net = build().eval()
    assert net(torch.randn(4, *shape)).shape == (4, 10)
    assert helpers.parameter_count(net) == params


def test_utterance_cmvn_normalizes_every_channel():
    x = torch.randn(3, 13, 74) * 5 + 2
    z = study.utterance_cmvn(x)
    torch.testing.assert_close(z.mean(-1), torch.zeros(3, 13), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(-1), torch.ones(3, 13), atol=1e-4, rtol=0)


def test_speed_perturb_resamples_and_zero_fills():
    x = torch.arange(10.0).view(1, 1, 10).repeat(3, 1, 1)
    y = study.speed_perturb(x, torch.tensor([1.0, 2.0, 0.5]))
    # exact on any CPU: these factors give integer or half-integer source positions, so every weight
    # (0, 0.5, 1) and every product and sum of small integers is exact in float32
    assert torch.equal(y[0], x[0])  # factor 1 keeps the signal
    assert y[1, 0].tolist() == [0, 2, 4, 6, 8, 0, 0, 0, 0, 0]  # twice as fast: every other sample
    assert y[2, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]  # half as fast: interpolated


def test_add_noise_has_the_requested_snr():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 100000)
    noise = study.add_noise(x, torch.tensor([0.0, 20.0])) - x
    ratio = x.pow(2).mean(-1) / noise.pow(2).mean(-1)
    torch.testing.assert_close(10 * ratio.log10().squeeze(1), torch.tensor([0.0, 20.0]), atol=0.1, rtol=0)


def test_mask_band_zeros_one_band_per_example():
    torch.manual_seed(0)
    x = torch.ones(50, 13, 74)
    frames = study.mask_band(x, 9, dim=2)
    zero_frames = (frames == 0).all(1).sum(1)  # masked frames per example
    assert zero_frames.max() <= 9 and zero_frames.max() > 0
    assert ((frames == 0).any(1) == (frames == 0).all(1)).all()  # whole frames, all channels
    rows = study.mask_band(x, 2, dim=1)
    assert (rows == 0).all(2).sum(1).max() <= 2 and ((rows == 0).any(2) == (rows == 0).all(2)).all()


def test_augmented_loader_delays_every_signal_and_keeps_its_label():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 100)
    x[:, :, :10] = 1  # every signal starts at sample 0 and lasts 10 samples
    recipe = study.Recipe("test", "waveform", study.build_net_waveform, epochs=1, lr=1e-3, max_delay=20)
    batches = list(study.AugmentedLoader(torch.utils.data.TensorDataset(x, torch.arange(64)), 16, recipe))
    X, y = torch.cat([X for X, _ in batches]), torch.cat([y for _, y in batches])
    assert sorted(y.tolist()) == list(range(64))
    onsets = (X[:, 0] > 0).float().argmax(1)
    assert 0 <= onsets.min() and onsets.max() <= 20 and len(set(onsets.tolist())) > 5
    assert ((X[:, 0] > 0).sum(1) == 10).all()  # delayed, not cut


def test_trim_silence_keeps_the_loud_part_and_a_margin():
    waveform = np.zeros(8000, np.float32)
    waveform[3000:4000] = 0.5  # hops 37.5-50 of 80 samples are loud
    trimmed = study.trim_silence(waveform, margin=2)
    assert len(trimmed) == (50 - 37 + 4) * study.HOP and np.abs(trimmed).sum() == 1000 * 0.5
    assert study.trim_silence(np.zeros(100, np.float32)).size == 100  # silence is kept as it is


def test_log_mel_puts_a_tone_in_the_band_of_its_frequency():
    t = np.arange(8000) / helpers.SAMPLE_RATE
    x = study.log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert x.shape == (study.MELS, 1 + (8000 - study.NFFT) // study.HOP)
    centres = mel2hz(study.MEL_POINTS[1:-1])
    assert x.mean(1).argmax().item() == np.abs(centres - 1000).argmin()


def test_logmel_features_have_a_fixed_size_and_zero_mean_speech():
    word = (0.3 * np.random.default_rng(0).standard_normal(4000) * np.hanning(4000)).astype(np.float32)
    x = study.logmel_features([word, np.zeros(10, np.float32), np.ones(20000, np.float32)])
    assert x.shape == (3, study.MELS, study.FRAMES) and torch.isfinite(x).all()
    speech = x[0, :, :(x[0] != 0).any(0).nonzero().max() + 1]  # the frames before the zero padding
    torch.testing.assert_close(speech.mean(1), torch.zeros(study.MELS), atol=1e-4, rtol=0)


def test_speech_mfcc_features_normalize_the_speech_before_padding():
    word = (0.3 * np.random.default_rng(0).standard_normal(3000) * np.hanning(3000)).astype(np.float32)
    x = study.speech_mfcc_features([word, np.zeros(5, np.float32), np.ones(20000, np.float32)])
    assert x.shape == (3, 13, 74) and torch.isfinite(x).all()
    speech = x[0, :, :(x[0] != 0).any(0).nonzero().max() + 1]  # the frames before the zero padding
    assert speech.shape[1] < 40 and (x[0, :, speech.shape[1]:] == 0).all()
    torch.testing.assert_close(speech.mean(1), torch.zeros(13), atol=1e-4, rtol=0)


def test_stretched_logmel_features_last_equally_long():
    rng = np.random.default_rng(0)
    short, long = (0.3 * rng.standard_normal(n).astype(np.float32) for n in (2000, 9000))
    x = study.stretched_logmel_features([short, long])
    assert x.shape == (2, study.MELS, study.STRETCHED_FRAMES) and (x[:, :, -1] != 0).all()  # no padding
    frames = study.utterance_cmvn(study.log_mel(study.trim_silence(long)))  # (MELS, ~110): squeezed to 50
    torch.testing.assert_close(x[1, :, [0, -1]], frames[:, [0, -1]], atol=1e-4, rtol=0)  # first and last frames stay


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_warp_mels_moves_a_formant_by_the_factor(factor):
    centres = mel2hz(study.MEL_POINTS[1:-1])
    band = np.abs(centres - 1500).argmin()
    x = torch.zeros(1, study.MELS, 5)
    x[0, band] = 1  # one formant at ~1500 Hz in every frame
    warped = study.warp_mels(x, torch.tensor([factor]))
    assert warped.shape == x.shape
    assert warped[0, :, 0].argmax().item() == np.abs(centres - factor * centres[band]).argmin()
    # factor 1 keeps the spectrum: the band positions go through mel -> Hz -> mel in float32, so the
    # weights are 0 and 1 only up to rounding (CPU-dependent); a band moved by one would differ by 1
    torch.testing.assert_close(study.warp_mels(x, torch.tensor([1.0])), x, atol=1e-4, rtol=0)


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_warp_cepstra_moves_a_formant_of_mfcc_frames_by_the_factor(factor):
    centres = mel2hz(study.MFCC_POINTS[1:-1])
    bands = torch.zeros(study.MFCC_BANDS, 1)
    bands[np.abs(centres - 1500).argmin()] = 1  # one formant at ~1500 Hz
    dct = study.Cepstrum(13, study.MFCC_BANDS).dct
    lifter = torch.diag(1 + 11 * torch.sin(torch.pi * torch.arange(13) / 22))
    spectrum = lambda c: (dct.T @ lifter.inverse() @ c)[:, 0]  # smoothed band energies of cepstra (13, 1)
    warped = study.warp_cepstra((lifter @ dct @ bands)[None], torch.tensor([factor]))[0]
    peak = centres[np.abs(centres - 1500).argmin()]
    assert spectrum(warped).argmax().item() == np.abs(centres - factor * peak).argmin()
    x = torch.randn(2, 13, 74)
    torch.testing.assert_close(study.warp_cepstra(x, torch.ones(2)), x, atol=1e-5, rtol=0)  # factor 1 keeps it
    # c0, the log energy, is kept exactly on any CPU: its row of the matrix is (1, 0, ..., 0) by construction
    assert torch.equal(study.warp_cepstra(x, torch.tensor([0.9, 1.1]))[:, 0], x[:, 0])


def test_cepstrum_is_an_orthonormal_dct():
    cepstrum = study.Cepstrum(study.MELS)
    torch.testing.assert_close(cepstrum.dct @ cepstrum.dct.T, torch.eye(study.MELS), atol=1e-5, rtol=0)
    flat = study.Cepstrum(13)(torch.full((2, study.MELS, 7), 3.0))  # the same energy in every band
    assert flat.shape == (2, 13, 7) and flat[:, 1:].abs().max() < 1e-5 and flat[:, 0].allclose(torch.tensor(3.0 * study.MELS ** 0.5))


def test_fit_learns_a_tiny_set_and_predict_proba_gives_probabilities():
    torch.manual_seed(0)
    x, y = torch.randn(40, study.MELS, study.FRAMES), torch.arange(40) % 10
    x[torch.arange(40), y] += 3  # digit d: band d is loud
    recipe = study.Recipe("test", "logmel", study.build_net_logmel_gap, epochs=8, lr=1e-2, batch_size=8,
                          vtlp=0.1, masks=(2, 5), members=2)
    net = study.fit(recipe, x, y, seed=3)
    assert isinstance(net, study.Ensemble) and len(net.members) == 2 and not net.training
    p = study.predict_proba(net, x)
    assert p.shape == (40, 10) and torch.allclose(p.sum(1), torch.ones(40))
    assert study.accuracy_of(p.argmax(1), y) > 0.9


def test_fit_is_reproducible_from_its_seed():
    x, y = torch.randn(20, 13, 74), torch.arange(20) % 10
    recipe = study.Recipe("test", "mfcc", study.build_net_mfcc_gap, epochs=1, lr=1e-3, batch_size=10)
    first, second = (study.predict_proba(study.fit(recipe, x, y, seed=1), x) for _ in range(2))
    assert torch.equal(first, second)  # exact: the same process, CPU and thread count


def test_recording_features_give_every_recipe_its_input_shape():
    waveforms = [np.zeros(3000, np.float32), 0.1 * np.random.default_rng(0).standard_normal(9000).astype(np.float32)]
    shapes = {"waveform": (2, 1, study.SIZE), "mfcc": (2, 13, 74), "mfcc_speech": (2, 13, 74),
              "logmel": (2, study.MELS, study.FRAMES),
              "logmel_stretched": (2, study.MELS, study.STRETCHED_FRAMES)}
    for recipe in {**study.RECIPES, **study.SCREENED}.values():
        x = study.recording_features(recipe, waveforms)
        assert x.shape == shapes[recipe.features] and x.dtype == torch.float32
    assert study.RECOGNIZER in study.RECIPES


def test_confusion_matrix_counts_pairs():
    counts = study.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), classes=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]




def test_results_file_has_the_schema_the_notebook_reads():
    results = json.loads(study.RESULTS_FILE.read_text())
    assert set(results["recipes"]) == set(study.RECIPES)
    for name, r in results["recipes"].items():
        assert list(r["loso"]) == SPEAKERS
        assert r["loso_mean"] == pytest.approx(sum(r["loso"].values()) / 6, abs=1e-4)  # stored to 4 decimals
        assert 0 <= r["official"] <= 1 and len(r["random"]) == 3
        counts = torch.tensor(r["confusion"])
        assert counts.shape == (10, 10) and counts.sum() == 3000 and (counts.sum(1) == 300).all()
        correct = counts.diag().sum().item() / 3000  # pooled LOSO accuracy: 500 recordings per speaker
        assert correct == pytest.approx(r["loso_mean"], abs=1e-4), name


def test_results_file_holds_every_screened_recipe():
    screening = json.loads(study.RESULTS_FILE.read_text())["screening"]
    assert list(screening) == list(study.SCREENED)  # in the order they were tried
    for name, entry in screening.items():
        assert entry["about"] == study.SCREENED[name].about and set(entry["loso"]) <= set(SPEAKERS)


def test_results_file_holds_the_pocketsphinx_baseline():
    baseline = json.loads(study.RESULTS_FILE.read_text())["baselines"]["pocketsphinx"]
    assert list(baseline["loso"]) == SPEAKERS and len(baseline["random"]) == 1
    assert baseline["loso_mean"] == pytest.approx(sum(baseline["loso"].values()) / 6, abs=1e-4)
    assert baseline["loso_worst"] == min(baseline["loso"].values())
    assert "pocketsphinx" in baseline["config"] and 0 <= baseline["official"] <= 1
    correct = torch.tensor(baseline["confusion"]).diag().sum().item() / 3000  # no training: every recording once
    assert correct == pytest.approx(baseline["loso_mean"], abs=1e-4)


def test_tables_show_the_baseline_beside_the_recipes():
    loso = dict(zip(SPEAKERS, [0.8, 0.9, 0.7, 0.6, 1.0, 0.9]))
    results = {"recipes": {"a": {"loso": loso, "loso_mean": 0.8167, "official": 0.99, "random": [0.98, 0.99, 1.0]}},
               "baselines": {"pocketsphinx": {"loso": loso, "loso_mean": 0.8167, "official": 0.8, "random": [0.79]}}}
    summary, per_speaker = study.speaker_independent_tables(results)
    assert [row["recipe"] for row in summary] == ["a", "pocketsphinx"]
    assert summary[0]["random 2/3 split (3 seeds)"] == "0.990 ± 0.008"
    assert summary[1]["random 2/3 split (3 seeds)"] == "0.790" and summary[1]["worst speaker"] == 0.6
    assert per_speaker[3] == {"held-out speaker": "nicolas", "a": 0.6, "pocketsphinx": 0.6}


def test_sphinx_hears_digits_in_real_recordings(recordings):
    pytest.importorskip("pocketsphinx", reason="the baseline's optional dependency (requirements-study.txt)")
    decoder = study.sphinx_decoder()
    for name, digit in [("0_george_0.wav", 0), ("1_george_0.wav", 1), ("7_george_0.wav", 7)]:
        assert study.sphinx_digit(decoder, helpers.read_wav(recordings / name)) == digit
    assert study.sphinx_digit(decoder, np.zeros(4000, np.float32)) in [-1, *range(10)]  # silence: no crash


def test_update_results_merges_each_recipe_into_the_file(tmp_path, monkeypatch):
    file = tmp_path / "results.json"
    file.write_text(json.dumps({"recipes": {"filterbank": {"seconds": 5}}}))
    monkeypatch.setattr(study, "speaker_independent_study", lambda data_dir, names: {names[0]: {"seconds": 2}})
    results = study.update_results("unused", ["waveform", "mfcc_cmvn"], file)
    assert list(results["recipes"]) == ["mfcc_cmvn", "waveform", "filterbank"]  # in RECIPES order, old kept
    assert results["seconds"] == 9 and json.loads(file.read_text()) == results
    assert not file.with_suffix(".partial").exists()
