"""The diagonal complex linear recurrence of an LRU, ``h_t = λ ⊙ h_{t-1} + b_t`` (``h_{-1} = 0``).

:func:`lru_scan` evaluates it for all ``t`` at once by recursive doubling (Hillis–Steele scan): after the step
with shift ``s`` every position holds ``Σ_{k<2s} λ^k b_{t-k}``, so ``⌈log2 L⌉`` vectorised steps give
``h_t = Σ_{k≤t} λ^k b_{t-k}`` for any length ``L`` (no padding to a power of two, no Python loop over time).

Padding: callers zero ``b`` at padded positions. Then left padding contributes nothing to the real positions
that follow it (their outputs equal those of the unpadded sequence), and right padding cannot reach the real
positions before it because the recurrence is causal.

Packing: several sequences may share one row, told apart by non-decreasing ``segments`` ids; the state is
reset at every segment start (``h_{t-1}`` is taken as 0 when ``t - 1`` belongs to another segment). In the
doubling step the carry from ``t - s`` is kept only when ``segments[t - s] == segments[t]``; by induction
every state then sums its own segment only. :func:`lru_recurrence` is the step-by-step reference.
"""

from __future__ import annotations

import torch


def lru_scan(b: torch.Tensor, nu: torch.Tensor, theta: torch.Tensor, segments: torch.Tensor | None = None, *,
             max_span: int | None = None) -> torch.Tensor:
    """All states of ``h_t = λ h_{t-1} + b_t`` with ``λ = exp(-ν + iθ)``, by recursive doubling.

    Args:
        b: ``(B, L, H)`` complex inputs ``b_t``.
        nu, theta: ``(H,)`` real decay ``ν > 0`` and phase ``θ`` of the eigenvalues.
        segments: optional ``(B, L)`` non-decreasing ids of packed sequences (the state resets between them).
        max_span: the longest stretch over which a state can carry (e.g. the longest packed sequence): the
            doubling stops at it, so a long packed row costs ``⌈log2 max_span⌉`` steps, not ``⌈log2 L⌉``.

    Returns:
        ``(B, L, H)`` complex states ``h``.
    """
    in_place = not (torch.is_grad_enabled() and (b.requires_grad or nu.requires_grad or theta.requires_grad))
    h = b.clone() if in_place else b
    length = b.shape[1] if max_span is None else min(b.shape[1], max_span)
    shift = 1
    while shift < length:
        # λ^s = exp(-sν) e^{isθ}, computed directly (no error accumulated by repeated squaring)
        power = torch.polar(torch.exp(-shift * nu), shift * theta)          # (H,)
        prev = h[:, :-shift]                                                 # states s positions earlier
        if segments is not None:
            same = segments[:, shift:] == segments[:, :-shift]              # (B, L - s): same sequence
            prev = prev * same.unsqueeze(-1)
        elif in_place:
            prev = prev.clone()
        if in_place:                                                         # inference: no copies of h
            h[:, shift:].addcmul_(prev, power)
        else:
            h = torch.cat((h[:, :shift], torch.addcmul(h[:, shift:], prev, power)), dim=1)
        shift *= 2
    return h


def lru_recurrence(b: torch.Tensor, nu: torch.Tensor, theta: torch.Tensor,
                   segments: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: the same recurrence one step at a time (slow; for tests)."""
    lam = torch.polar(torch.exp(-nu), theta)                                 # (H,)
    state = torch.zeros_like(b[:, 0])
    out = []
    for t in range(b.shape[1]):
        if segments is not None and t > 0:
            keep = (segments[:, t] == segments[:, t - 1]).unsqueeze(-1)
            state = torch.where(keep, state, torch.zeros_like(state))
        state = lam * state + b[:, t]
        out.append(state)
    return torch.stack(out, dim=1)
