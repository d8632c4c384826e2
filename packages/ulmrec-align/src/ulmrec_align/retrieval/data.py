"""Tensors the retriever trains and evaluates on, built from the leave-one-out split (dense 0-based item ids).

Training uses only ``split.train`` (never the validation or test item). Each training history ``s`` of
length ``n`` is cut into windows of at most ``L = max_len`` targets: the last window ends at ``n``, earlier
ones every ``stride`` items before it, and the first one starts at 0, so every item is a target at least once.
A window ``w`` becomes::

    tokens = [0] + (w[:-1] + 1)      # token = item id + 1; 0 = the empty context (padding)
    labels = w                        # position j predicts labels[j] from tokens[..j]

so the first item of a window is predicted from the empty context (as in LlamaRec). Windows are stored without
padding and a batch is *packed*: its windows are concatenated into one row with segment ids at which the
recurrence restarts, so no compute is spent on padding. Evaluation inputs are the last ``L`` items of
``split.valid_input`` (validation) or ``split.test_input`` (test), packed the same way (``[0] + items``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from ulmrec_align.data.split import UserSplit

Split = Literal["valid", "test"]


@dataclass(frozen=True)
class Packed:
    """Sequences packed in one row: ``tokens``, ``labels``, ``segments`` ``(T,)`` int64; ``last`` ``(S,)``."""

    tokens: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    segments: npt.NDArray[np.int64]
    last: npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainWindows:
    """Training windows stored ragged: window ``i`` is ``tokens[offsets[i]:offsets[i+1]]`` (and ``labels``).

    ``tokens = [0] + (w[:-1] + 1)`` and ``labels = w`` for each window ``w``: no padding is stored, so a batch
    is packed into one row whose length is its number of targets (see :meth:`pack`).
    """

    tokens: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def n_targets(self) -> int:
        return int(self.labels.shape[0])

    def window(self, index: int) -> tuple[list[int], list[int]]:
        """``(tokens, labels)`` of one window."""
        a, b = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.tokens[a:b].tolist(), self.labels[a:b].tolist()

    def pack(self, indices: npt.ArrayLike) -> Packed:
        """Concatenate the windows ``indices`` (in that order) into one row with segment ids."""
        return _pack_ragged(self.tokens, self.labels, self.offsets, np.asarray(indices, dtype=np.int64))

    def padded(self, max_len: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Left-padded ``(W, max_len)`` tokens and labels (``-1`` = no target), for a padded model run."""
        tokens = np.zeros((len(self), max_len), dtype=np.int64)
        labels = np.full((len(self), max_len), -1, dtype=np.int64)
        for i in range(len(self)):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            tokens[i, max_len - (b - a):] = self.tokens[a:b]
            labels[i, max_len - (b - a):] = self.labels[a:b]
        return tokens, labels


def _pack_ragged(tokens: npt.NDArray[np.int64], labels: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64],
                 indices: npt.NDArray[np.int64]) -> Packed:
    starts = offsets[indices]
    lengths = offsets[indices + 1] - starts
    ends = np.cumsum(lengths)
    # position p of the packed row reads starts[s] + (p - first position of segment s)
    total = int(ends[-1]) if len(ends) else 0
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - ends + lengths, lengths)
    return Packed(tokens=tokens[positions], labels=labels[positions],
                  segments=np.repeat(np.arange(len(indices), dtype=np.int64), lengths), last=ends - 1)


@dataclass(frozen=True)
class EvalInputs:
    """Evaluation inputs of one split: left-padded ``tokens`` (U, L), ``targets`` (U,), full histories."""

    split: Split
    user_ids: npt.NDArray[np.int64]
    tokens: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    histories: list[tuple[int, ...]]

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])



def pack_histories(histories: Sequence[Sequence[int]], max_len: int) -> Packed:
    """Pack histories for scoring: ``[0] + (last max_len items + 1)`` each; ``last``: final positions.

    >>> p = pack_histories([[4, 5, 6], [7]], 2)
    >>> p.tokens.tolist(), p.segments.tolist(), p.last.tolist()
    ([0, 6, 7, 0, 8], [0, 0, 0, 1, 1], [2, 4])
    """
    chosen = [list(h)[-max_len:] for h in histories]
    lengths = np.fromiter((len(h) + 1 for h in chosen), dtype=np.int64, count=len(chosen))
    ends = np.cumsum(lengths)
    tokens = np.zeros(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
    for end, h in zip(ends.tolist(), chosen, strict=True):
        if h:
            tokens[end - len(h):end] = np.asarray(h, dtype=np.int64) + 1
    return Packed(tokens=tokens, labels=np.full_like(tokens, -1),
                  segments=np.repeat(np.arange(len(chosen), dtype=np.int64), lengths), last=ends - 1)


def window_bounds(n: int, max_len: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the windows over a history of length ``n`` (latest first).

    >>> window_bounds(5, 4, 4)
    [(1, 5), (0, 4)]
    >>> window_bounds(120, 50, 50)
    [(70, 120), (20, 70), (0, 50)]
    >>> window_bounds(3, 50, 50)
    [(0, 3)]
    """
    if n <= max_len:
        return [(0, n)] if n > 0 else []
    bounds = []
    end = n
    while end - max_len > 0:
        bounds.append((end - max_len, end))
        end -= stride
    bounds.append((0, max_len))
    return bounds


def train_windows(splits: Sequence[UserSplit], *, max_len: int, stride: int | None = None) -> TrainWindows:
    """All training windows of all users (from ``split.train`` only), in user order, latest window first."""
    step = stride or max_len
    windows: list[tuple[int, ...]] = []
    for split in splits:
        history = split.train
        for start, end in window_bounds(len(history), max_len, step):
            windows.append(history[start:end])
    lengths = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
    offsets = np.zeros(len(windows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    labels = np.fromiter((i for w in windows for i in w), dtype=np.int64, count=int(offsets[-1]))
    tokens = labels + 1
    tokens[1:] = tokens[:-1].copy()
    tokens[offsets[:-1]] = 0                                   # each window starts from the empty context
    return TrainWindows(tokens=tokens, labels=labels, offsets=offsets)


def left_pad(histories: Sequence[Sequence[int]], max_len: int) -> npt.NDArray[np.int64]:
    """Last ``max_len`` items of each history as tokens (item id + 1), left-padded with 0: ``(U, max_len)``.

    >>> left_pad([[4, 5, 6], [7]], 2).tolist()
    [[5, 6], [0, 8]]
    """
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, history in enumerate(histories):
        tail = list(history)[-max_len:]
        if tail:
            out[row, max_len - len(tail):] = np.asarray(tail, dtype=np.int64) + 1
    return out


def eval_inputs(splits: Sequence[UserSplit], split: Split, *, max_len: int) -> EvalInputs:
    """Inputs and targets of all users for ``split`` (valid: train → valid; test: train+valid → test)."""
    if split == "valid":
        histories = [s.valid_input for s in splits]
        targets = [s.valid_target for s in splits]
    elif split == "test":
        histories = [s.test_input for s in splits]
        targets = [s.test_target for s in splits]
    else:
        raise ValueError(f"unknown split {split!r}: expected 'valid' or 'test'")
    return EvalInputs(split=split, user_ids=np.asarray([s.user_id for s in splits], dtype=np.int64),
                      tokens=left_pad(histories, max_len), targets=np.asarray(targets, dtype=np.int64),
                      histories=[tuple(h) for h in histories])


def history_mask_indices(
    histories: Sequence[Sequence[int]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(rows, cols)`` of every (user row, seen item) pair, for masking scores in one indexed assignment."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    rows = np.repeat(np.arange(len(histories), dtype=np.int64), lengths)
    cols = (np.fromiter((i for h in histories for i in h), dtype=np.int64, count=int(lengths.sum()))
            if lengths.sum() else np.zeros(0, dtype=np.int64))
    return rows, cols
