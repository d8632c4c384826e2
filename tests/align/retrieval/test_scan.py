"""The parallel scan against the step-by-step recurrence, with odd lengths, padding and packed sequences."""

from __future__ import annotations

import math

import pytest
import torch

from ulmrec_align.retrieval.config import LRURecConfig
from ulmrec_align.retrieval.lru import LRURec
from ulmrec_align.retrieval.scan import lru_recurrence, lru_scan

torch.set_num_threads(1)
ATOL = 1e-5


def _inputs(batch: int, length: int, state: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    b = torch.complex(torch.randn(batch, length, state, generator=g),
                      torch.randn(batch, length, state, generator=g))
    r = 0.5 + 0.49 * torch.rand(state, generator=g)          # |λ| in [0.5, 0.99]
    nu = -torch.log(r)
    theta = 2 * math.pi * torch.rand(state, generator=g)
    return b, nu, theta


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 16, 31, 50, 64, 65])
def test_scan_matches_recurrence(length: int) -> None:
    b, nu, theta = _inputs(3, length, 8, seed=length)
    expected = lru_recurrence(b, nu, theta)
    with torch.no_grad():
        in_place = lru_scan(b, nu, theta)
    out_of_place = lru_scan(b.requires_grad_(), nu, theta)   # the autograd path
    torch.testing.assert_close(in_place, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(out_of_place.detach(), expected, atol=ATOL, rtol=0)


def test_scan_gradients_match_recurrence() -> None:
    b, nu, theta = _inputs(2, 13, 4, seed=1)
    grads = []
    for fn in (lru_scan, lru_recurrence):
        bb, nn_ = b.clone().requires_grad_(), nu.clone().requires_grad_()
        h = fn(bb, nn_, theta)
        (h.real.square().sum() + h.imag.sum()).backward()
        assert bb.grad is not None
        assert nn_.grad is not None
        grads.append((bb.grad, nn_.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("pad", [1, 4, 13])
def test_left_padding_leaves_real_positions_unchanged(pad: int) -> None:
    b, nu, theta = _inputs(2, 11, 6, seed=pad)
    padded = torch.cat((torch.zeros(2, pad, 6, dtype=b.dtype), b), dim=1)     # zero input at padding
    torch.testing.assert_close(lru_scan(padded, nu, theta)[:, pad:], lru_recurrence(b, nu, theta),
                               atol=ATOL, rtol=0)


def test_right_padding_cannot_reach_real_positions() -> None:
    b, nu, theta = _inputs(2, 9, 6, seed=3)
    padded = torch.cat((b, torch.randn(2, 5, 6, dtype=b.dtype)), dim=1)       # even non-zero padding
    torch.testing.assert_close(lru_scan(padded, nu, theta)[:, :9], lru_recurrence(b, nu, theta),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("lengths", [[1], [3, 1, 4], [7, 7, 1, 2, 9, 5], [50, 1, 33]])
def test_packed_sequences_reset_between_segments(lengths: list[int]) -> None:
    total = sum(lengths)
    b, nu, theta = _inputs(1, total, 5, seed=total)
    segments = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).unsqueeze(0)
    expected = torch.cat([lru_recurrence(part, nu, theta) for part in b.split(lengths, dim=1)], dim=1)
    torch.testing.assert_close(lru_recurrence(b, nu, theta, segments), expected, atol=ATOL, rtol=0)
    for max_span in (None, max(lengths)):
        with torch.no_grad():
            torch.testing.assert_close(lru_scan(b, nu, theta, segments, max_span=max_span), expected,
                                       atol=ATOL, rtol=0)
        grad_path = lru_scan(b.requires_grad_(), nu, theta, segments, max_span=max_span)
        torch.testing.assert_close(grad_path.detach(), expected, atol=ATOL, rtol=0)


def test_model_is_invariant_to_padding_and_packing() -> None:
    torch.manual_seed(0)
    model = LRURec(n_items=30, config=LRURecConfig(hidden_size=8, max_len=12)).eval()
    histories = [[3, 4, 5, 6, 7], [1], [29, 0, 12]]
    with torch.no_grad():
        alone = [model.last_scores(torch.tensor([[0, *(i + 1 for i in h)]])) for h in histories]
        for width in (6, 9, 17):                                    # left-padded to different widths
            rows = torch.tensor([[0] * (width - len(h)) + [i + 1 for i in h] for h in histories])
            padded = model.last_scores(rows)
            for row, expected in enumerate(alone):
                torch.testing.assert_close(padded[row:row + 1], expected, atol=ATOL, rtol=0)
        tokens = torch.tensor([[t for h in histories for t in (0, *(i + 1 for i in h))]])
        segments = torch.repeat_interleave(torch.arange(3), torch.tensor([len(h) + 1 for h in histories]))
        last = torch.cumsum(torch.tensor([len(h) + 1 for h in histories]), 0) - 1
        packed = model.packed_scores(tokens, segments.unsqueeze(0), last)
        torch.testing.assert_close(packed, torch.cat(alone), atol=ATOL, rtol=0)
