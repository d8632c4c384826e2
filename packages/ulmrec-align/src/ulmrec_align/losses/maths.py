"""The pieces the losses share, with the vocabulary projection only where a loss is taken.

Batches are left-padded (:class:`~ulmrec_align.tuning.data.PadCollator`), so every response sits at the end
of its row and the model projects only the last ``keep = L − min(first label position) + 1`` positions onto
the vocabulary (``logits_to_keep``): with 49k-word heads (SmolLM2) the prompt tokens' logits are about a
fifth of the FLOPs of a step and are never used.

The batch loss is the mean over *loss items* (response tokens, or one item per ranking sample under a
listwise loss); each function also returns each row's summed loss and item count for per-task logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ulmrec_align.prompts.encoding import IGNORE_INDEX
from ulmrec_align.ranking.scorer import relevance_logits, summed_log_probs


def kept_positions(labels: torch.Tensor) -> int:
    """How many final positions need logits: from the one before the earliest label to the end. (B, L)."""
    has = labels != IGNORE_INDEX
    if not bool(has.any()):
        return 1
    none = torch.full_like(labels[:, 0], labels.shape[1])
    first = torch.where(has.any(dim=1), has.float().argmax(dim=1), none)
    return int(labels.shape[1] - int(first.min()) + 1)


def response_logits(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (B, K, V) float32, targets (B, K))`` of a left-padded batch: the vocabulary projection only
    on the last positions (:func:`kept_positions`), each aligned with the label it predicts."""
    labels = batch["labels"]
    keep = kept_positions(labels)
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False)
    logits = outputs.logits[:, :-1].float()             # (B, keep-1, V): predicts labels[:, L-keep+1:]
    return logits, labels[:, labels.shape[1] - keep + 1:]


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(per-token cross-entropy (B, K), valid (B, K))``: 0 loss where the target is ignored."""
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
    return loss, targets != IGNORE_INDEX


def choice_scores(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(R, N)`` summed log-probabilities ``log p(choice_j | prompt)`` of the batch's ``choice_*`` tensors
    (:class:`~ulmrec_align.tuning.data.PadCollator`), ``-inf`` where a row has fewer choices; differentiable.
    With ``choice_null_ids`` (1, P₀), minus each choice's log-probability after that prompt, without gradient.

    The prompts are read once with their key/value cache, repeated N times and read on by the choices; a
    model that returns no cache (activation checkpointing turns it off) reads prompt + choice rows whole.
    """
    ids, mask = batch["choice_ids"], batch["choice_mask"]
    scores = summed_log_probs(model, batch["choice_prompt_ids"], batch["choice_prompt_mask"], ids, mask)
    if "choice_null_ids" in batch:
        null = batch["choice_null_ids"].expand(ids.shape[0], -1)
        with torch.no_grad():
            prior = summed_log_probs(model, null, torch.ones_like(null), ids, mask)
        scores = scores - prior
    return scores.masked_fill(mask[:, :, 0] == 0, float("-inf"))


def _rows(batch: dict[str, torch.Tensor], keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch's rows ``keep`` (left-padded tensors), without the padding columns they all share."""
    out = {k: batch[k].index_select(0, keep)
           for k in ("input_ids", "attention_mask", "position_ids", "labels", "n_letters")}
    start = int(out["attention_mask"].any(dim=0).float().argmax())
    for k in ("input_ids", "attention_mask", "position_ids", "labels"):
        out[k] = out[k][:, start:]
    return out


def pool_relevance(model: Any, batch: dict[str, torch.Tensor], yes_no: tuple[int, int]) -> torch.Tensor:
    """``(R, N)`` relevance log-odds of the batch's ``choice_*`` continuations, ``-inf`` where a row has fewer
    candidates; differentiable."""
    scores = relevance_logits(model, batch["choice_prompt_ids"], batch["choice_prompt_mask"],
                              batch["choice_ids"], batch["choice_mask"], yes_id=yes_no[0], no_id=yes_no[1])
    return scores.masked_fill(batch["choice_mask"][:, :, 0] == 0, float("-inf"))


def pool_loss(model: Any, batch: dict[str, torch.Tensor], scores: torch.Tensor, *,
              letter_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Listwise cross-entropy of ``scores`` (R, N) on the rows with a pool, :func:`response_loss` (letters)
    on the others."""
    b = batch["input_ids"].shape[0]
    chosen = batch["choice_rows"]
    listwise = F.cross_entropy(scores, batch["choice_target"], reduction="none")
    row_sum = torch.zeros(b, dtype=listwise.dtype, device=listwise.device).index_put((chosen,), listwise)
    row_items = torch.zeros(b, dtype=listwise.dtype, device=listwise.device).index_put(
        (chosen,), torch.ones_like(listwise))
    total = listwise.sum()
    others = torch.ones(b, dtype=torch.bool, device=chosen.device).index_fill(0, chosen, False)
    if bool(others.any()):
        keep = others.nonzero(as_tuple=True)[0]
        _, rest_sum, rest_items = response_loss(model, _rows(batch, keep), letters=True,
                                                letter_ids=letter_ids, detach=False)
        total = total + rest_sum.sum()
        row_sum = row_sum.index_put((keep,), rest_sum)
        row_items = row_items.index_put((keep,), rest_items)
    loss = total / row_items.sum().clamp(min=1)
    return loss, row_sum.detach(), row_items.detach()


def response_loss(model: Any, batch: dict[str, torch.Tensor], *, letters: bool, letter_ids: Sequence[int],
                  detach: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``tokens`` loss, with the letter cross-entropy on ranking rows when ``letters``."""
    n_letters = batch["n_letters"]
    logits, targets = response_logits(model, batch)
    token_loss, valid = token_losses(logits, targets)
    row_sum = (token_loss * valid).sum(dim=1)
    row_items = valid.sum(dim=1).to(row_sum.dtype)
    if letters and bool((n_letters > 0).any()):
        ranking = (n_letters > 0).nonzero(as_tuple=True)[0]
        first = valid[ranking].float().argmax(dim=1)     # where each ranking row's letter is predicted
        letter_table = torch.tensor(list(letter_ids), dtype=torch.long, device=logits.device)
        at_letter = logits[ranking, first]                # (R, V)
        choices = at_letter.index_select(1, letter_table)  # (R, n_max)
        columns = torch.arange(len(letter_ids), device=logits.device)
        choices = choices.masked_fill(columns[None, :] >= n_letters[ranking, None], float("-inf"))
        gold = targets[ranking, first]
        target_pos = (letter_table[None, :] == gold[:, None]).float().argmax(dim=1)
        letter_loss = F.cross_entropy(choices, target_pos, reduction="none")
        row_sum = row_sum.index_put((ranking,), letter_loss)
        row_items = row_items.index_put((ranking,), torch.ones_like(letter_loss))
    loss = row_sum.sum() / row_items.sum().clamp(min=1)
    return (loss, row_sum.detach(), row_items.detach()) if detach else (loss, row_sum, row_items)
