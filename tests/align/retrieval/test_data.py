"""Training windows and evaluation inputs: coverage, shapes, and no leakage of validation/test items."""

from __future__ import annotations

import numpy as np
import pytest

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.split import leave_one_out
from ulmrec_align.retrieval.data import (
    eval_inputs,
    history_mask_indices,
    left_pad,
    pack_histories,
    train_windows,
    window_bounds,
)


@pytest.mark.parametrize(("n", "max_len", "stride"), [(1, 5, 5), (5, 5, 5), (6, 5, 5), (23, 5, 5), (23, 5, 2),
                                                       (100, 50, 50), (149, 50, 25)])
def test_windows_cover_every_position_and_respect_max_len(n: int, max_len: int, stride: int) -> None:
    bounds = window_bounds(n, max_len, stride)
    covered = set()
    for start, end in bounds:
        assert 0 <= start < end <= n
        assert end - start <= max_len
        covered.update(range(start, end))
    assert covered == set(range(n))
    assert bounds[0][1] == n                      # the latest window ends at the last training item


def test_window_tokens_are_shifted_labels() -> None:
    splits = [leave_one_out(0, list(range(12))), leave_one_out(1, [7, 3, 5])]
    windows = train_windows(splits, max_len=4)
    for index in range(len(windows)):
        tokens, labels = windows.window(index)
        assert tokens[0] == 0                     # predicted from the empty context
        assert tokens[1:] == [label + 1 for label in labels[:-1]]
    # user 0: train = 0..9 in windows (6, 10), (2, 6), (0, 4); user 1: train = [7], one window
    labels = [windows.window(i)[1] for i in range(len(windows))]
    assert labels == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 1, 2, 3], [7]]
    assert windows.n_targets == 13


def test_no_leakage_into_training_or_validation_inputs(tiny: PreparedDataset) -> None:
    splits = tiny.splits
    windows = train_windows(splits, max_len=5, stride=3)
    # every window lies inside one user's train split; rebuild per user and compare
    per_user = [train_windows([s], max_len=5, stride=3) for s in splits]
    assert sum(len(w) for w in per_user) == len(windows)
    for split, w in zip(splits, per_user, strict=True):
        assert set(w.labels.tolist()) <= set(split.train)
        assert {t - 1 for t in w.tokens.tolist() if t} <= set(split.train)
        # the test item and the validation item are never training targets or inputs of this user's
        # windows unless they also occur earlier in the train split (repeat purchases)
        for held_out in (split.valid_target, split.test_target):
            if held_out not in split.train:
                assert held_out not in w.labels.tolist()
    valid = eval_inputs(splits, "valid", max_len=5)
    test = eval_inputs(splits, "test", max_len=5)
    for row, split in enumerate(splits):
        assert valid.histories[row] == split.train            # validation input: train items only
        assert test.histories[row] == (*split.train, split.valid_target)
        assert valid.targets[row] == split.valid_target
        assert test.targets[row] == split.test_target
        assert split.test_target not in valid.histories[row] or split.test_target in split.train
    assert valid.tokens.shape == (len(splits), 5)


def test_packing_matches_the_windows() -> None:
    splits = [leave_one_out(0, list(range(9))), leave_one_out(1, [4, 2, 8, 1])]
    windows = train_windows(splits, max_len=3)
    order = np.array([2, 0, 1])
    packed = windows.pack(order)
    expected_tokens, expected_labels = [], []
    for index in order:
        tokens, labels = windows.window(int(index))
        expected_tokens += tokens
        expected_labels += labels
    assert packed.tokens.tolist() == expected_tokens
    assert packed.labels.tolist() == expected_labels
    assert packed.segments.tolist() == sorted(packed.segments.tolist())
    assert len(set(packed.segments.tolist())) == len(order)
    tokens, labels = windows.padded(3)
    assert tokens.shape == labels.shape == (len(windows), 3)


def test_pack_histories_and_left_pad() -> None:
    packed = pack_histories([[1, 2, 3, 4], [], [9]], 3)
    assert packed.tokens.tolist() == [0, 3, 4, 5, 0, 0, 10]
    assert packed.last.tolist() == [3, 4, 6]
    assert left_pad([[1, 2, 3, 4], []], 3).tolist() == [[3, 4, 5], [0, 0, 0]]
    rows, cols = history_mask_indices([[5, 6], [], [1]])
    assert rows.tolist() == [0, 0, 2]
    assert cols.tolist() == [5, 6, 1]
