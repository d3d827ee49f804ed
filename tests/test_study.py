"""The study (study.py): speaker folds, official split, augmentations, the networks, the results file."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import helpers
import reader
import recognizer
import study
from conftest import shrunk

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
    (recognizer.build_net_mfcc_gap, (13, 74), conv(13, 32, 3) + HEAD),
    (recognizer.build_net_embedding_head, (288,), 2 * 288 + 288 * 256 + 256 + 256 * 10 + 10),  # batch norm, 2 linear
])
def test_networks_map_inputs_to_ten_logits(build, shape, params):
    net = build().eval()
    assert net(torch.randn(4, *shape)).shape == (4, 10)
    assert helpers.parameter_count(net) == params


def test_utterance_cmvn_normalizes_every_channel():
    x = torch.randn(3, 13, 74) * 5 + 2
    z = reader.standardize(x)
    torch.testing.assert_close(z.mean(-1), torch.zeros(3, 13), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(-1), torch.ones(3, 13), atol=1e-4, rtol=0)


def test_speed_perturb_resamples_and_zero_fills():
    x = torch.arange(10.0).view(1, 1, 10).repeat(3, 1, 1)
    y = recognizer.speed_perturb(x, torch.tensor([1.0, 2.0, 0.5]))
    # exact on any CPU: these factors give integer or half-integer source positions, so every weight
    # (0, 0.5, 1) and every product and sum of small integers is exact in float32
    assert torch.equal(y[0], x[0])  # factor 1 keeps the signal
    assert y[1, 0].tolist() == [0, 2, 4, 6, 8, 0, 0, 0, 0, 0]  # twice as fast: every other sample
    assert y[2, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]  # half as fast: interpolated


def test_add_noise_has_the_requested_snr():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 100000)
    noise = recognizer.add_noise(x, torch.tensor([0.0, 20.0])) - x
    ratio = x.pow(2).mean(-1) / noise.pow(2).mean(-1)
    torch.testing.assert_close(10 * ratio.log10().squeeze(1), torch.tensor([0.0, 20.0]), atol=0.1, rtol=0)


def test_mask_band_zeros_one_band_per_example():
    torch.manual_seed(0)
    x = torch.ones(50, 13, 74)
    frames = recognizer.mask_band(x, 9, dim=2)
    zero_frames = (frames == 0).all(1).sum(1)  # masked frames per example
    assert zero_frames.max() <= 9 and zero_frames.max() > 0
    assert ((frames == 0).any(1) == (frames == 0).all(1)).all()  # whole frames, all channels
    rows = recognizer.mask_band(x, 2, dim=1)
    assert (rows == 0).all(2).sum(1).max() <= 2 and ((rows == 0).any(2) == (rows == 0).all(2)).all()


def test_augmented_loader_delays_every_signal_and_keeps_its_label():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 100)
    x[:, :, :10] = 1  # every signal starts at sample 0 and lasts 10 samples
    recipe = recognizer.Recipe("test", "waveform", study.build_net_waveform, epochs=1, lr=1e-3, max_delay=20)
    batches = list(recognizer.AugmentedLoader(torch.utils.data.TensorDataset(x, torch.arange(64)), 16, recipe))
    X, y = torch.cat([X for X, _ in batches]), torch.cat([y for _, y in batches])
    assert sorted(y.tolist()) == list(range(64))
    onsets = (X[:, 0] > 0).float().argmax(1)
    assert 0 <= onsets.min() and onsets.max() <= 20 and len(set(onsets.tolist())) > 5
    assert ((X[:, 0] > 0).sum(1) == 10).all()  # delayed, not cut


@pytest.mark.slow
def test_fit_learns_a_tiny_set_and_predict_proba_gives_probabilities():
    torch.manual_seed(0)
    x, y = torch.randn(40, 13, 74), torch.arange(40) % 10
    x[torch.arange(40), y] += 3  # digit d: coefficient d is high
    recipe = recognizer.Recipe("test", "mfcc", recognizer.build_net_mfcc_gap, epochs=8, lr=1e-2, batch_size=8,
                          masks=(2, 5), members=2)
    net = recognizer.fit(recipe, x, y, seed=3)
    assert isinstance(net, recognizer.Ensemble) and len(net.members) == 2 and not net.training
    p = helpers.predict_proba(net, x, bf16=False)
    assert p.shape == (40, 10) and torch.allclose(p.sum(1), torch.ones(40))
    assert study.accuracy_of(p.argmax(1), y) > 0.9


def test_fit_is_reproducible_from_its_seed():
    x, y = torch.randn(20, 13, 74), torch.arange(20) % 10
    recipe = recognizer.Recipe("test", "mfcc", recognizer.build_net_mfcc_gap, epochs=1, lr=1e-3, batch_size=10)
    first, second = (helpers.predict_proba(recognizer.fit(recipe, x, y, seed=1), x, bf16=False) for _ in range(2))
    assert torch.equal(first, second)  # exact: the same process, CPU and thread count


def test_recording_features_give_every_recipe_its_input_shape():
    waveforms = [np.zeros(3000, np.float32), 0.1 * np.random.default_rng(0).standard_normal(9000).astype(np.float32)]
    shapes = {"waveform": (2, 1, reader.SIZE), "mfcc": (2, 13, 74), "embedding": (2, 288)}
    for recipe in study.RECIPES.values():
        x = recognizer.recording_features(recipe, waveforms)
        if isinstance(recipe, recognizer.Combination):  # its parts' inputs, flattened and concatenated
            parts = [recognizer.recording_features(part, waveforms).flatten(1) for part in recipe.parts]
            assert torch.equal(x, torch.cat(parts, 1)) and x.shape == (2, 288 + 13 * 74)
        else:
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


def test_results_file_describes_every_screened_recipe():
    screening = json.loads(study.RESULTS_FILE.read_text())["screening"]
    assert len(screening) >= 8  # the recipes screened before the code of the unpromising ones was removed
    for entry in screening.values():
        assert entry["about"] and entry["loso"] and set(entry["loso"]) <= set(SPEAKERS)


def test_recognizer_weight_is_the_screened_best_and_its_selection_bias_is_stored():
    """recognizer.MFCC_WEIGHT is the best leaving one speaker out of the screened weights whose random split reaches
    study.SEEN_GOAL on every seed, and lower weights miss it; its scores at that weight are the recipe's own (the same
    folds, split and seeds); the entry also holds each speaker's score at the weight chosen without him."""
    results = json.loads(study.RESULTS_FILE.read_text())
    entry, recipe = results["screening"]["embedding+mfcc weight"], results["recipes"][study.RECOGNIZER]
    by_weight = {float(w): acc for w, acc in entry["loso_mean by weight"].items()}
    random = {float(w): acc for w, acc in entry["random by weight"].items()}
    assert set(by_weight) == set(random) == set(study.WEIGHTS)
    assert by_weight[0.0] == results["recipes"]["embedding"]["loso_mean"]
    seen = [w for w in study.WEIGHTS if min(random[w]) >= study.SEEN_GOAL]
    assert seen == entry["weights reaching the random goal"] and min(seen) == recognizer.MFCC_WEIGHT
    assert max(seen, key=by_weight.get) == recognizer.MFCC_WEIGHT == recognizer.RECIPE.weights[1]
    assert by_weight[recognizer.MFCC_WEIGHT] == recipe["loso_mean"] and random[recognizer.MFCC_WEIGHT] == recipe["random"]
    assert list(entry["loso"]) == SPEAKERS and set(entry["weight chosen"].values()) <= set(seen)


def test_weight_screening_combines_the_same_two_networks_at_every_weight(recordings, tmp_path):
    """tools/speaker_independent.py --weight on 300 recordings (takes 0-4) with a shrunk recipe: every weight and
    speaker scored, and at weight 0 each fold scores what its embedding network alone does."""
    data_dir = tmp_path / "recordings"
    data_dir.mkdir()
    for f in sorted(recordings.glob("*.wav")):
        if helpers.parse_file_name(f)[2] < 5:
            (data_dir / f.name).symlink_to(f)
    recipe = shrunk(recognizer.RECIPE, copies=0, epochs=3, members=1)
    entry = study.update_weight_screening(data_dir, tmp_path / "results.json", recipe)["screening"][
        "embedding+mfcc weight"]
    assert set(map(float, entry["loso_mean by weight"])) == set(study.WEIGHTS) and list(entry["loso"]) == SPEAKERS
    assert set(map(float, entry["random by weight"])) == set(study.WEIGHTS)
    assert all(len(accuracies) == 3 for accuracies in entry["random by weight"].values())
    assert set(entry["weight chosen"].values()) <= set(entry["weights reaching the random goal"]) <= set(study.WEIGHTS)
    data = study.load_fsdd(data_dir)
    x = recognizer.training_features(recipe, data["recordings"], cache_dir=None)
    alone = [study.accuracy_of(helpers.predict_proba(recognizer.fit(recipe, x[train], data["y"][train]).nets[0],
                                                     recognizer.part_input(recipe, 0, x[test]), bf16=False).argmax(1),
                               data["y"][test])
             for _, train, test in study.speaker_folds(data["speakers"])]
    assert entry["loso_mean by weight"]["0.0"] == round(float(np.mean(alone)), 4)


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
    assert list(tmp_path.iterdir()) == [file]  # no staged .results.json.*.partial left beside it


def clip(recordings, name: str) -> np.ndarray:
    """One FSDD recording as helpers.read_wav returns it."""
    return helpers.read_wav(recordings / name)


@pytest.mark.slow
def test_speech_embeddings_give_96_values_every_80_ms(recordings):
    short, long = np.zeros(2000, np.float32), np.zeros(24000, np.float32)  # 0.25 s, 3 s
    short[500:1500] = clip(recordings, "4_jackson_0.wav")[:1000]
    embeddings = reader.speech_embeddings([short, long])
    assert embeddings[0].shape == (9, 96)  # 1.5 s: 147 frames of 10 ms, a window of 76 every 8
    assert reader.mel_windows(reader.embedding_input(short)).shape == (9, 76, 32, 1)
    assert len(embeddings[1]) > 3 * len(embeddings[0]) and np.isfinite(embeddings[1]).all()
    assert np.abs(embeddings[0] - embeddings[1][:len(embeddings[0])]).max() > 1  # speech differs from silence


def test_embedding_features_in_chunks_on_every_core_are_the_embeddings_themselves(recordings):
    """Spread over threads in chunks of any size, the pooled embeddings are bit for bit those of one call."""
    waveforms = [clip(recordings, f"{digit}_lucas_{digit}.wav") for digit in range(5)]
    whole = reader.pooled_embeddings(waveforms)
    assert whole.shape == (5, 288)
    for chunk in (1, 2, 100):
        assert np.array_equal(reader.embedding_features(waveforms, chunk), whole), chunk


def test_speech_embeddings_are_the_same_at_any_batch_size(recordings, monkeypatch):
    """EMBEDDING_BATCH is a speed setting only: every window is embedded on its own, bit for bit."""
    waveforms = [clip(recordings, f"{digit}_theo_{digit}.wav") for digit in range(10)]
    embedded = {}
    for size in (1, 7, 64):
        monkeypatch.setattr(reader, "EMBEDDING_BATCH", size)
        embedded[size] = np.concatenate(reader.speech_embeddings(waveforms))
    assert len(embedded[1]) > 7 + 64 and all(np.array_equal(e, embedded[1]) for e in embedded.values())


def test_embedding_input_centres_the_clip_in_1_5_seconds_at_16_khz():
    x = reader.embedding_input(np.full(4000, 0.5, np.float32))  # 0.5 s at 8 kHz
    assert x.shape == (24000,) and x.dtype == np.float32
    loud = np.flatnonzero(np.abs(x) > 1000)
    assert abs(loud[0] - 8000) < 20 and abs(loud[-1] - 16000) < 20 and abs(x[12000] / 32767 - 0.5) < 0.01
    assert len(reader.embedding_input(np.zeros(16000, np.float32))) == 32000  # longer clips: not cut


def test_perturb_voice_changes_pace_loudness_and_padding_reproducibly(recordings):
    x = clip(recordings, "7_lucas_3.wav")
    one, again = (recognizer.perturb_voice(x, np.random.default_rng(5), speed=0.15) for _ in range(2))
    assert np.array_equal(one, again) and one.dtype == np.float32 and np.abs(one).max() <= 1
    lengths = [len(recognizer.perturb_voice(x, np.random.default_rng(seed), speed=0.15)) for seed in range(20)]
    assert len(x) / 1.15 - 2 <= min(lengths) and max(lengths) <= len(x) / 0.85 + 0.3 * helpers.SAMPLE_RATE + 2
    assert len(set(lengths)) > 10


def test_speech_segments_find_each_digit_of_an_assembled_recording(recordings):
    clips = [clip(recordings, f"{d}_george_{i}.wav") for d, i in [(4, 1), (7, 2), (1, 3), (1, 4)]]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = study.assemble(clips, rng)
        segments = reader.speech_segments(x)
        assert len(segments) == 4, segments
        assert all(b - a >= 0.1 * helpers.SAMPLE_RATE for a, b in segments)


def test_assemble_with_spans_says_where_each_clip_lies(recordings):
    clips = [clip(recordings, f"{d}_lucas_{i}.wav") for d, i in [(2, 1), (9, 2), (0, 3)]]
    x, spans = study.assemble_with_spans(clips, np.random.default_rng(0), snr_db=(60, 60))
    assert [b - a for a, b in spans] == [len(c) for c in clips] and spans[-1][1] < len(x)
    for (a, b), c in zip(spans, clips):  # the clip itself, scaled, under noise 60 dB below
        assert np.corrcoef(x[a:b], c)[0, 1] > 0.999
    assert np.equal(study.assemble(clips, np.random.default_rng(0), snr_db=(60, 60)), x).all()


def test_one_digit_in_a_long_noisy_recording_is_one_segment(recordings):
    x, rate = clip(recordings, "6_nicolas_20.wav"), helpers.SAMPLE_RATE
    recording = study.assemble([x], np.random.default_rng(1), lead=(3, 4), snr_db=(15, 15))
    [(start, end)] = reader.speech_segments(recording)
    assert 2.9 * rate < start and end < 4.1 * rate + len(x) and end - start <= len(x) + 0.15 * rate  # margins
    assert reader.speech_segments(np.zeros(8000, np.float32)) == []  # silence: nothing spoken
    assert len(reader.spoken_parts(np.zeros(8000, np.float32))) == 1  # read as one digit anyway


def test_training_features_hold_every_copy_and_are_cached(tmp_path, monkeypatch):
    waveforms = [0.1 * np.random.default_rng(i).standard_normal(3000 + 500 * i).astype(np.float32) for i in range(3)]
    recipe = recognizer.Recipe("test", "mfcc", recognizer.build_net_mfcc_gap, epochs=1, lr=1e-3, copies=2)
    x = recognizer.training_features(recipe, waveforms, tmp_path)
    assert x.shape == (3, 3, 13, 74) and torch.equal(x[:, 0], recognizer.recording_features(recipe, waveforms))
    assert not torch.equal(x[:, 1], x[:, 0]) and not torch.equal(x[:, 1], x[:, 2])
    rng = np.random.default_rng(0)  # seed 0's copies made round after round, as without the worker thread
    for k in (1, 2):
        copies = [recognizer.perturb_voice(w, rng, snr_db=recipe.copy_snr_db) for w in waveforms]
        assert torch.equal(x[:, k], recognizer.recording_features(recipe, copies)), k
    assert len(list(tmp_path.glob("features-*.pt"))) == 1 and not list(tmp_path.glob(".*partial"))
    noisier = recognizer.training_features(replace(recipe, copy_snr_db=(0, 5)), waveforms, tmp_path)
    assert torch.equal(noisier[:, 0], x[:, 0]) and not torch.equal(noisier[:, 1], x[:, 1])  # other copies, cached apart
    assert len(list(tmp_path.glob("features-*.pt"))) == 2
    monkeypatch.setattr(reader, "mfcc_frames", None)  # the cached features are loaded, not computed
    assert torch.equal(recognizer.training_features(recipe, waveforms, tmp_path), x)
    with pytest.raises(TypeError):  # other recordings are not in the cache: computed (without mfcc_frames)
        recognizer.training_features(recipe, [2 * w for w in waveforms], tmp_path)


def test_augmented_loader_draws_one_copy_per_recording():
    torch.manual_seed(0)
    x = torch.arange(3.0).view(1, 3, 1).repeat(64, 1, 1)  # copy k of every recording holds the value k
    recipe = recognizer.Recipe("test", "embedding", recognizer.build_net_embedding_head, epochs=1, lr=1e-3, copies=2)
    X = torch.cat([X for X, _ in recognizer.AugmentedLoader(torch.utils.data.TensorDataset(x, torch.arange(64)), 16, recipe)])
    assert X.shape == (64, 1) and set(X[:, 0].tolist()) == {0.0, 1.0, 2.0}


@pytest.mark.slow
def test_read_digits_reads_sequences_of_a_held_out_speaker(recordings, held_out_model):
    recipe, net, speaker = held_out_model
    rng = np.random.default_rng(0)
    truths = [[int(d) for d in rng.integers(0, 10, 4)] for _ in range(5)]
    sequences = [study.assemble([clip(recordings, f"{d}_{speaker}_{rng.integers(10, 50)}.wav") for d in truth], rng)
                 for truth in truths]
    model = recognizer.export(net, recipe)
    read = reader.read_digits(model, sequences)
    assert all(len(digits) == 4 and 0 <= p <= 1 for digits, p in read)
    correct = sum(a == b for (digits, _), truth in zip(read, truths) for a, b in zip(digits, truth))
    assert correct >= 0.8 * 20, read
    _, p = read[0]
    single = reader.read_digits(model, [clip(recordings, f"{truths[0][0]}_{speaker}_20.wav")])
    assert len(single[0][0]) == 1 and p < 1  # one digit stays one; a sequence's probability is a product


@pytest.mark.slow
def test_classify_hears_only_the_unsure_digits_again_at_other_speeds(recordings, held_out_model, monkeypatch):
    """reader.classify: a digit whose likeliest class has less than SECOND_LOOK gets the mean of its
    log-probabilities at speed 1 and at SPEEDS; the others keep the model's own probabilities."""
    from scipy.signal import resample_poly
    recipe, net, speaker = held_out_model
    rng = np.random.default_rng(0)
    waveforms = [study.assemble([clip(recordings, f"{d}_{speaker}_{i}.wav")], rng, lead=(0.1, 0.2), snr_db=(0, 10))
                 for d in range(10) for i in (30, 40)]
    model = recognizer.export(net, recipe)
    own, heard = model.probabilities(waveforms), reader.classify(model, waveforms)
    unsure = own.max(1) < reader.SECOND_LOOK
    assert 0 < unsure.sum() < len(waveforms)
    np.testing.assert_allclose(heard[~unsure], own[~unsure], atol=1e-6)
    speeds = [[w] + [resample_poly(w, up, down).astype(np.float32) for up, down in reader.SPEEDS]
              for w, is_unsure in zip(waveforms, unsure) if is_unsure]
    by_hand = reader.softmax(np.stack([model.log_probabilities(s).mean(0) for s in speeds]))
    np.testing.assert_allclose(heard[unsure], by_hand, atol=1e-5)
    monkeypatch.setattr(reader, "SECOND_LOOK", 0.0)  # never unsure: the model's own probabilities
    np.testing.assert_allclose(reader.classify(model, waveforms), own, atol=1e-6)


@pytest.mark.slow
def test_recordings_tool_counts_what_the_model_reads_of_a_held_out_speaker(recordings, held_out_model, tmp_path):
    """tools/recordings.py's count of one held-out speaker (theo, takes 0-9) with a model trained without him:
    every sequence, single digit and clean recording counted once, most of them read right, reproducibly."""
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("recordings_tool", ROOT / "tools" / "recordings.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    recipe, net, speaker = held_out_model
    files = [recordings / f"{d}_{speaker}_{i}.wav" for d in range(10) for i in range(10)]
    data = {"recordings": [helpers.read_wav(f) for f in files], "y": torch.arange(10).repeat_interleave(10)}
    model = recognizer.export(net, recipe)
    counts = tool.speaker_counts(model, data, np.arange(100), np.random.default_rng(0), tmp_path)
    assert (counts["sequences"], counts["singles"], counts["clean"]) == (tool.SEQUENCES, tool.SINGLES, 100)
    assert 3 * tool.SEQUENCES <= counts["digits"] <= 7 * tool.SEQUENCES
    rates = tool.rates(counts)
    assert rates["clean recording accuracy"] >= 0.8 and rates["digit accuracy at the true cuts"] >= 0.7, rates
    assert rates["split right"] >= 0.9 and 0 < rates["sequence accuracy"] <= 1, rates
    assert tool.speaker_counts(model, data, np.arange(100), np.random.default_rng(0), tmp_path) == counts
