"""The tuning loss, with the vocabulary projection only where a loss is taken.

Batches are left-padded (:class:`~ulmrec_align.tuning.data.PadCollator`), so every response sits at the end
of its row and the model projects only the last ``keep = L − min(first label position) + 1`` positions onto
the vocabulary (``logits_to_keep``): with 49k-word heads (SmolLM2) the prompt tokens' logits are about a
fifth of the FLOPs of a step and are never used.

Two losses (``--loss``):

- ``tokens``: the causal-LM cross-entropy of every response token (full vocabulary), the paper's loss;
- ``letters``: for ranking samples (``n_letters > 0``), a cross-entropy over the sample's own candidate
  letters only, ``−log softmax(z[ℓ_1..ℓ_n])[target]`` at the position that emits the letter, where ``ℓ_j``
  is the first token id of letter ``j``'s training target (the ids the ranker reads); other tasks keep the
  token loss. It teaches exactly the comparison the ranker makes.

The batch loss is the mean over *loss items* (response tokens, or one item per ranking sample under
``letters``); ``per_row`` returns each row's summed loss and item count for per-task logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ulmrec_align.prompts.encoding import IGNORE_INDEX

LossKind = Literal["tokens", "letters"]


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


def alignment_loss(model: Any, batch: dict[str, torch.Tensor], *, kind: LossKind,
                   letter_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, row_loss_sum (B,), row_items (B,))`` of a left-padded batch.

    ``batch``: ``input_ids``, ``attention_mask``, ``position_ids``, ``labels`` (B, L) and ``n_letters`` (B,)
    (0 for non-ranking samples).
    """
    n_letters = batch["n_letters"]
    logits, targets = response_logits(model, batch)
    token_loss, valid = token_losses(logits, targets)
    row_sum = (token_loss * valid).sum(dim=1)
    row_items = valid.sum(dim=1).to(row_sum.dtype)
    if kind == "letters" and bool((n_letters > 0).any()):
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
    return loss, row_sum.detach(), row_items.detach()
