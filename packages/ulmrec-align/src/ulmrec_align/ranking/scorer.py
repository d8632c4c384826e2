"""Letter logits in one forward pass per prompt, or the likelihood of each candidate's title.

Prompts are left-padded (explicit ``position_ids = cumsum(mask) - 1``) and only the last position's
logits are computed (``logits_to_keep=1``); the score of candidate ``X`` is the logit of
``letter_token_ids[X]``, the first token of the training target for letter ``X``
(see :mod:`ulmrec_align.prompts.encoding`).

Title answers (``answer = "title"``): candidate ``c``'s score is ``log p(c | prompt) = Σ_t log p(c_t |
prompt, c_<t)`` over its answer ids (title pieces + EOS, as trained); the prompt is read once and its
key/value cache shared by the candidates (:func:`choice_log_likelihoods`).

Relevance answers (``answer = "relevance"``): candidate ``c``'s score is the log-odds
``z_yes − z_no`` of the logits at the last token of its continuation (title + question) read after the
user's prompt (:func:`relevance_logits`, :func:`relevance_scores`): one number per candidate, no title-length
or token-count effects. A pool is one packed row, the prompt then every continuation, each continuation
masked from the others (:func:`pack_pools`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ulmrec_align.models.kv_cache import output_cache, with_cache
from ulmrec_align.prompts.encoding import encode_prompt, letter_token_ids
from ulmrec_align.prompts.index_tokens import IndexTokens


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, position_ids)``, each (B, L_max), sequences right-aligned."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(list(ids), dtype=torch.long)
            mask[row, width - len(ids):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids, mask, positions


def pad_pools(pools: Sequence[Sequence[Sequence[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, each (R, N, T): pool ``r``'s continuations right-padded with ``pad_id`` to the longest
    of all, pools to the largest (a missing continuation is all mask 0).

    >>> ids, mask = pad_pools([[[5, 6], [7]], [[8]]], pad_id=0)
    >>> ids.tolist(), mask[1].tolist()
    ([[[5, 6], [7, 0]], [[8, 0], [0, 0]]], [[1, 0], [0, 0]])
    """
    n = max(len(pool) for pool in pools)
    width = max((len(c) for pool in pools for c in pool), default=1)
    ids = torch.full((len(pools), n, width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, pool in enumerate(pools):
        for j, c in enumerate(pool):
            ids[r, j, : len(c)] = torch.tensor(list(c), dtype=torch.long)
            mask[r, j, : len(c)] = 1
    return ids, mask


def model_device(model: Any) -> torch.device:
    return next(p.device for p in model.parameters())


@torch.no_grad()
def last_logits(model: Any, prompts: Sequence[Sequence[int]], *, pad_id: int, batch_size: int = 8,
                columns: Sequence[int] | None = None,
                progress: Callable[[int], None] | None = None) -> npt.NDArray[np.float32]:
    """Logits at each prompt's last position, (n, V) — or (n, len(columns)) for the given vocab ids.

    Prompts are processed longest first in batches of ``batch_size`` (less padding); rows come back in the
    input order.
    """
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    device = model_device(model)
    out: npt.NDArray[np.float32] | None = None
    cols = None if columns is None else torch.tensor(list(columns), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask, positions = left_pad([prompts[i] for i in rows], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device), logits_to_keep=1, use_cache=False).logits[:, -1]
            if cols is not None:
                logits = logits.index_select(1, cols)
            values = logits.float().cpu().numpy()
            if out is None:
                out = np.empty((len(prompts), values.shape[1]), dtype=np.float32)
            out[rows] = values
            if progress is not None:
                progress(len(rows))
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0 if columns is None else len(columns)), np.float32)


@torch.no_grad()
def choice_log_likelihoods(model: Any, prompts: Sequence[Sequence[int]],
                           choices: Sequence[Sequence[Sequence[int]]], *, pad_id: int, batch_size: int = 8,
                           progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """``out[i][j] = log p(choices[i][j] | prompts[i])``, the summed log-probability of the choice's ids.

    Per prompt, the choices are read in groups of at most ``8 × batch_size`` by :func:`summed_log_probs` (the
    prompt read once per group, its key/value cache repeated for the group's choices): a user's ``n ≤ 8 ×
    batch_size`` candidates cost ``|prompt| + n·|choice|`` tokens, not ``n·(|prompt| + |choice|)``.
    ``progress`` is called with 1 per prompt done. ``pad_id`` fills the padding (masked).
    """
    return per_prompt_groups(model, prompts, choices, summed_log_probs, pad_id=pad_id, batch_size=batch_size,
                             progress=progress)


def per_prompt_groups(model: Any, prompts: Sequence[Sequence[int]],
                      options: Sequence[Sequence[Sequence[int]]], score: Callable[..., torch.Tensor], *,
                      pad_id: int, batch_size: int,
                      progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """``out[i][j] = score(model, prompt i (1, P), its mask, options (1, G, T), their mask)[0, j]``, the
    options of each prompt in groups of at most ``8 × batch_size`` (right-padded with ``pad_id``), in eval
    mode and without gradients."""
    device = model_device(model)
    out: list[list[float]] = []
    was_training = model.training
    model.eval()
    group = max(1, 8 * batch_size)
    try:
        with torch.no_grad():
            for prompt, row in zip(prompts, options, strict=True):
                if any(len(c) == 0 for c in row):
                    raise ValueError("a candidate's continuation has no tokens")
                head = torch.tensor([list(prompt)], device=device)
                values: list[float] = []
                for start in range(0, len(row), group):
                    ids, mask = pad_pools([row[start:start + group]], pad_id)
                    values += score(model, head, torch.ones_like(head), ids.to(device),
                                    mask.to(device))[0].tolist()
                out.append(values)
                if progress is not None:
                    progress(1)
    finally:
        model.train(was_training)
    return out


def summed_log_probs(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, ids: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """``(R, N)``: ``Σ_t log p(ids[r, n, t] | prompt r, ids[r, n, <t])`` over ``mask``; prompts (R, P)
    left-padded, choices (R, N, T) right-padded. Each prompt is read once and its key/value cache repeated
    for its N choices (a model that keeps no cache reads prompt + choice rows whole). Differentiable: the
    ranker calls it under ``no_grad``, the ``choices`` loss with gradients."""
    r, n, t = ids.shape
    flat_ids, flat_mask = ids.reshape(r * n, t), mask.reshape(r * n, t)
    head = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                 position_ids=(prompt_mask.cumsum(dim=1) - 1).clamp(min=0), logits_to_keep=1, use_cache=True)
    cache = output_cache(head)
    if cache is not None:
        cache.batch_repeat_interleave(n)
        positions = prompt_mask.sum(dim=1).repeat_interleave(n)[:, None] + torch.arange(t, device=ids.device)
        tail = model(input_ids=flat_ids, attention_mask=torch.cat([prompt_mask.repeat_interleave(n, 0),
                                                                   flat_mask], dim=1),
                     position_ids=positions, use_cache=True, **with_cache(cache)).logits
        logits = torch.cat([head.logits[:, -1:].repeat_interleave(n, 0), tail[:, :-1]], dim=1)
    else:
        full_mask = torch.cat([prompt_mask.repeat_interleave(n, 0), flat_mask], dim=1)
        logits = model(input_ids=torch.cat([prompt_ids.repeat_interleave(n, 0), flat_ids], dim=1),
                       attention_mask=full_mask, position_ids=(full_mask.cumsum(dim=1) - 1).clamp(min=0),
                       logits_to_keep=t + 1, use_cache=False).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.float().reshape(r * n * t, -1), flat_ids.reshape(-1),
                                            reduction="none").view(r * n, t)
    return -(nll * flat_mask).sum(dim=1).view(r, n)


def left_align(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows ``(M, T)`` moved to the right end (left-padded), so every row ends at ``T − 1``.

    >>> left_align(torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]]))[0].tolist()
    [[0, 5, 6]]
    """
    t = ids.shape[1]
    shift = t - mask.sum(dim=1, keepdim=True)                      # (M, 1) padding to put in front
    source = torch.arange(t, device=ids.device)[None, :] - shift   # (M, T) which column lands here
    keep = source >= 0
    moved = ids.gather(1, source.clamp(min=0)).masked_fill(~keep, 0)
    return moved, keep.to(mask.dtype)


#: Attention implementations that take a custom 4D mask (:func:`relevance_logits` packs pools with one).
PACKING_ATTENTION = ("sdpa", "eager")
#: Pools read in one forward pass by :func:`relevance_scores` (packed rows, right-padded to the longest).
USERS_PER_PASS = 4


def packs_pools(model: Any) -> bool:
    """Whether ``model``'s attention takes a custom 4D mask (sdpa, eager): then a pool is read as one packed
    row (:func:`pack_pools`); otherwise (flash attention, flex) through a repeated key/value cache."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return implementation in PACKING_ATTENTION


def pack_pools(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, *,
               pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's prompt and its continuations as one sequence: ``(tokens, positions, allowed, ends)``.

    Row ``r`` is ``prompt_r ‖ c_r1 ‖ … ‖ c_rN`` (masked tokens only, then ``pad_id``), shape (R, L). The
    prompt's positions are ``0 … P−1``, every continuation's ``P … P + t − 1``; ``allowed`` (R, L, L, bool)
    lets a prompt token see the prompt causally and a continuation token the whole prompt and its own
    earlier tokens, never another candidate (padding sees itself only). So each continuation reads exactly
    what it reads after a cached prompt, without padding or a repeated cache. ``ends`` (R, N): the position
    of each continuation's last token, ``-1`` for an empty one.

    >>> tokens, positions, allowed, ends = pack_pools(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]),
    ...                                               torch.tensor([[[7, 8], [9, 0]]]),
    ...                                               torch.tensor([[[1, 1], [1, 0]]]))
    >>> tokens.tolist(), positions.tolist(), ends.tolist()
    ([[5, 6, 7, 8, 9]], [[0, 1, 2, 3, 2]], [[3, 4]])
    >>> allowed[0, 4].int().tolist()                   # candidate 9 sees the prompt and itself, not 7, 8
    [1, 1, 0, 0, 1]
    """
    r, n, _ = ids.shape
    prompt_lengths = prompt_mask.sum(dim=1).tolist()
    tail_lengths = mask.sum(dim=2).tolist()
    width = max(int(p) + int(sum(t)) for p, t in zip(prompt_lengths, tail_lengths, strict=True))
    device = ids.device
    tokens = torch.full((r, width), pad_id, dtype=torch.long, device=device)
    positions = torch.zeros((r, width), dtype=torch.long, device=device)
    allowed = torch.eye(width, dtype=torch.bool, device=device).repeat(r, 1, 1)
    ends = torch.full((r, n), -1, dtype=torch.long, device=device)
    for row in range(r):
        p = int(prompt_lengths[row])
        tokens[row, :p] = prompt_ids[row][prompt_mask[row].bool()]
        positions[row, :p] = torch.arange(p, device=device)
        allowed[row, :p, :p] = torch.ones(p, p, dtype=torch.bool, device=device).tril()
        at = p
        for j in range(n):
            t = int(tail_lengths[row][j])
            if t == 0:
                continue
            tokens[row, at:at + t] = ids[row, j][mask[row, j].bool()]
            positions[row, at:at + t] = torch.arange(p, p + t, device=device)
            allowed[row, at:at + t, :p] = True
            allowed[row, at:at + t, at:at + t] = torch.ones(t, t, dtype=torch.bool, device=device).tril()
            at += t
            ends[row, j] = at - 1
    return tokens, positions, allowed, ends


def relevance_logits(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, ids: torch.Tensor,
                     mask: torch.Tensor, *, yes_id: int, no_id: int) -> torch.Tensor:
    """``(R, N)``: ``z_yes − z_no`` at the last token of each continuation ``ids[r, n]`` read after prompt
    ``r``; prompts (R, P) left-padded, continuations (R, N, T) right-padded; 0 for an empty continuation.

    Each pool is one packed row (:func:`pack_pools`, one forward pass, no padding between candidates, only
    the continuations' last positions projected); a model whose attention takes no custom mask reads the
    prompt once and repeats its key/value cache (:func:`cached_relevance_logits`, the same numbers to
    ~1e-5). Differentiable (the ``relevance`` loss); the ranker calls it under ``no_grad``."""
    if not packs_pools(model):
        return cached_relevance_logits(model, prompt_ids, prompt_mask, ids, mask, yes_id=yes_id, no_id=no_id)
    tokens, positions, allowed, ends = pack_pools(prompt_ids, prompt_mask, ids, mask)
    if model.config._attn_implementation == "eager":     # eager adds the mask to the attention logits
        attention = torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(torch.float32).min)[:, None]
    else:
        attention = allowed[:, None]
    keep = torch.unique(ends[ends >= 0])                 # sorted positions whose logits are needed
    logits = model(input_ids=tokens, attention_mask=attention, position_ids=positions,
                   logits_to_keep=keep, use_cache=False).logits           # (R, K, V)
    odds = (logits[..., yes_id] - logits[..., no_id]).float()             # (R, K)
    column = torch.searchsorted(keep, ends.clamp(min=0))
    picked = odds.gather(1, column.clamp(max=max(len(keep) - 1, 0)))
    return picked.masked_fill(ends < 0, 0.0)


def cached_relevance_logits(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                            ids: torch.Tensor, mask: torch.Tensor, *, yes_id: int,
                            no_id: int) -> torch.Tensor:
    """:func:`relevance_logits` through a key/value cache: each prompt is read once and its cache repeated
    for its N continuations, which are left-aligned so that one logit row per continuation is projected
    (``logits_to_keep = 1``); a model that keeps no cache reads prompt and continuation whole."""
    r, n, t = ids.shape
    tail_ids, tail_mask = left_align(ids.reshape(r * n, t), mask.reshape(r * n, t))
    prompt_len = prompt_mask.sum(dim=1).repeat_interleave(n)[:, None]
    tail_positions = prompt_len + (tail_mask.cumsum(dim=1) - 1).clamp(min=0)
    head = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                 position_ids=(prompt_mask.cumsum(dim=1) - 1).clamp(min=0), logits_to_keep=1, use_cache=True)
    cache = output_cache(head)
    full_mask = torch.cat([prompt_mask.repeat_interleave(n, 0), tail_mask], dim=1)
    if cache is not None:
        cache.batch_repeat_interleave(n)
        logits = model(input_ids=tail_ids, attention_mask=full_mask, position_ids=tail_positions,
                       logits_to_keep=1, use_cache=True, **with_cache(cache)).logits[:, -1]
    else:
        logits = model(input_ids=torch.cat([prompt_ids.repeat_interleave(n, 0), tail_ids], dim=1),
                       attention_mask=full_mask,
                       position_ids=torch.cat([(prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
                                               .repeat_interleave(n, 0), tail_positions], dim=1),
                       logits_to_keep=1, use_cache=False).logits[:, -1]
    empty = mask.sum(dim=2) == 0
    return (logits[:, yes_id] - logits[:, no_id]).float().view(r, n).masked_fill(empty, 0.0)


def relevance_scores(model: Any, prompts: Sequence[Sequence[int]],
                     continuations: Sequence[Sequence[Sequence[int]]], *, yes_id: int, no_id: int,
                     pad_id: int, batch_size: int = 8, users_per_pass: int = USERS_PER_PASS,
                     progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """``out[i][j]`` = :func:`relevance_logits` of continuation ``j`` after prompt ``i``: the pools of
    ``users_per_pass`` prompts as packed rows of one forward pass (a model that packs,
    :func:`packs_pools`), else the prompt read once per group of at most ``8 × batch_size`` continuations
    (:func:`per_prompt_groups`)."""
    def score(model: Any, *tensors: torch.Tensor) -> torch.Tensor:
        return relevance_logits(model, *tensors, yes_id=yes_id, no_id=no_id)

    if not packs_pools(model) or users_per_pass < 2:
        return per_prompt_groups(model, prompts, continuations, score, pad_id=pad_id, batch_size=batch_size,
                                 progress=progress)
    if any(len(c) == 0 for row in continuations for c in row):
        raise ValueError("a candidate's continuation has no tokens")
    device = model_device(model)
    out: list[list[float]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), users_per_pass):
                users = range(start, min(start + users_per_pass, len(prompts)))
                head, head_mask, _ = left_pad([prompts[i] for i in users], pad_id)
                ids, mask = pad_pools([continuations[i] for i in users], pad_id)
                values = score(model, head.to(device), head_mask.to(device), ids.to(device), mask.to(device))
                for r, i in enumerate(users):
                    out.append(values[r, : len(continuations[i])].tolist())
                if progress is not None:
                    progress(len(users))
    finally:
        model.train(was_training)
    return out


def score_samples(model: Any, tokenizer: Any, samples: Sequence[Any], *, index_tokens: IndexTokens = "plain",
                  batch_size: int = 8) -> npt.NDArray[np.float32]:
    """Letter logits of ranking samples, (n, n_letters) with n_letters = the longest candidate list;
    columns past a sample's own candidates are ``-inf``."""
    n_letters = max((len(s.candidates or []) for s in samples), default=0)
    letters = letter_token_ids(tokenizer, n_letters)
    encoded = [encode_prompt(tokenizer, s.prompt, s.prompt_code_spans, index_tokens=index_tokens)
               for s in samples]
    scores = last_logits(model, encoded, pad_id=int(tokenizer.pad_token_id or 0), batch_size=batch_size,
                         columns=letters)
    for row, sample in enumerate(samples):
        scores[row, len(sample.candidates or []):] = -np.inf
    return scores


def letter_log_probs(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise ``log_softmax`` over each row's own letters: (n, L) scores with ``-inf`` past a row's letters
    stay ``-inf``.

    >>> letter_log_probs([[0.0, 0.0, -np.inf]]).round(4).tolist()
    [[-0.6931, -0.6931, -inf]]
    """
    values = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    return values - np.logaddexp.reduce(values, axis=1, keepdims=True)


def ndcg_at(scores: npt.NDArray[np.floating], target_positions: Sequence[int], k: int) -> float:
    """Mean NDCG@k of the target column per row, ties pessimistic: ``1/log2(1 + rank)`` if rank ≤ k."""
    from ulmrec_eval.metrics import compute_metrics

    if len(target_positions) == 0:
        return 0.0
    values = np.asarray(scores, dtype=np.float64)
    targets = values[np.arange(len(values)), np.asarray(target_positions)]
    ranks = (values >= targets[:, None]).sum(axis=1)
    return float(compute_metrics(ranks.astype(np.int64), (k,))[f"ndcg@{k}"])
