"""skipgrams / make_sampling_table: exact tf_keras agreement and sampling statistics."""
from __future__ import annotations

import random

import numpy as np
import pytest

from rnnkit.text import make_sampling_table, skipgrams


def test_deterministic_part_matches_keras(keras_ref):
    ref = keras_ref["skipgrams"]
    for case in ref["deterministic"]:
        couples, labels = skipgrams(ref["sequence"], ref["vocabulary_size"], window_size=case["window_size"],
                                    negative_samples=0.0, shuffle=False, categorical=case["categorical"])
        assert couples == case["couples"] and labels == case["labels"], case["window_size"]


def test_seeded_calls_match_keras_bit_for_bit(keras_ref):
    ref = keras_ref["skipgrams"]
    state = random.getstate()
    try:
        for case in ref["seeded"]:
            random.seed(case["global_seed"])
            table = (make_sampling_table(10, sampling_factor=case["sampling_factor"])
                     if case["sampling_factor"] else None)
            couples, labels = skipgrams(ref["sequence"], ref["vocabulary_size"], window_size=3,
                                        negative_samples=case["negative_samples"], shuffle=case["shuffle"],
                                        sampling_table=table, seed=case["seed"])
            assert couples == case["couples"], case["global_seed"]
            assert labels == case["labels"], case["global_seed"]
            assert random.random() == case["random_after"]  # same global side effects as Keras
    finally:
        random.setstate(state)


def test_sampling_tables_match_keras(keras_ref):
    for case in keras_ref["skipgrams"]["sampling_tables"]:
        got = make_sampling_table(case["size"], case["sampling_factor"])
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, np.array(case["table"]))


@pytest.fixture
def seeded_random():
    state = random.getstate()
    random.seed(1234)
    yield
    random.setstate(state)


def distinct_sequence(n=600, vocab=5000, seed=0):
    """A sequence of distinct word ids, so a word's position identifies it."""
    return np.random.default_rng(seed).choice(np.arange(1, vocab), size=n, replace=False).tolist()


def expected_positive_count(n, window):
    return sum(min(n, i + window + 1) - max(0, i - window) - 1 for i in range(n))


@pytest.mark.parametrize("negative_samples", [0.5, 1.0, 2.5])
def test_label_balance_follows_negative_samples(seeded_random, negative_samples):
    seq = distinct_sequence()
    couples, labels = skipgrams(seq, 5000, window_size=3, negative_samples=negative_samples, seed=5)
    positives = expected_positive_count(len(seq), 3)
    assert labels.count(1) == positives
    assert labels.count(0) == int(positives * negative_samples)
    assert len(couples) == len(labels)


def test_positives_lie_within_the_window(seeded_random):
    seq = distinct_sequence()
    position = {w: i for i, w in enumerate(seq)}
    couples, labels = skipgrams(seq, 5000, window_size=4, negative_samples=1.0, seed=9)
    for (target, context), label in zip(couples, labels):
        if label == 1:
            assert 0 < abs(position[target] - position[context]) <= 4


def test_negatives_are_in_vocabulary_and_near_uniform(seeded_random):
    vocab = 50
    seq = distinct_sequence(n=40, vocab=vocab)
    couples, labels = skipgrams(seq * 50, vocab, window_size=4, negative_samples=2.0, seed=3)
    negatives = np.array([c for c, label in zip(couples, labels) if label == 0])
    targets = set(seq)
    assert set(negatives[:, 0]) <= targets  # negative targets are words of the sequence
    contexts = negatives[:, 1]
    assert contexts.min() >= 1 and contexts.max() <= vocab - 1
    counts = np.bincount(contexts, minlength=vocab)[1:]
    expected = len(contexts) / (vocab - 1)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 49 + 6 * np.sqrt(2 * 48), chi2  # 48 degrees of freedom, ~6 sigma


def test_sampling_table_keeps_the_expected_share(seeded_random):
    seq = distinct_sequence(n=2000)
    full = expected_positive_count(len(seq), 2)
    table = np.full(5000, 0.3)
    couples, labels = skipgrams(seq, 5000, window_size=2, negative_samples=0.0, sampling_table=table,
                                shuffle=False)
    kept_targets = len({c[0] for c in couples})
    sigma = np.sqrt(len(seq) * 0.3 * 0.7)
    assert abs(kept_targets - 0.3 * len(seq)) < 6 * sigma
    assert len(couples) < full


def test_zero_is_skipped_and_categorical_labels():
    couples, labels = skipgrams([0, 1, 0, 2], 3, window_size=3, negative_samples=0.0, shuffle=False,
                                categorical=True)
    assert couples == [[1, 2], [2, 1]]
    assert labels == [[0, 1], [0, 1]]


def test_shuffle_keeps_pairs_and_labels_aligned(seeded_random):
    seq = distinct_sequence(n=50)
    plain, plain_labels = skipgrams(seq, 5000, negative_samples=0.0, shuffle=False)
    shuffled, labels = skipgrams(seq, 5000, negative_samples=0.0, shuffle=True, seed=1)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, plain))
    assert labels == plain_labels  # all ones
