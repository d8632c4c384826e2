"""Steps 2-4 of the fit: build the fusion, fit the quantizer on the fused users, then (``attention`` with a
trainable quantizer) train fusion and quantizer jointly.

The joint loss is ``quantizer.forward(fusion(u)).loss + uniformity_weight * uniformity(ID directions)``
(Adam, ``joint_epochs`` epochs of ``joint_batch_size`` users). A quantizer that cannot be trained by gradient
(``rqkmeans``, ``faiss``) runs ``attention`` as ``mean`` (fixed random ID terms, no training), with a note.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from ulmrec_eval.runtime.events import emit
from ulmrec_index.config import IndexerConfig
from ulmrec_index.fusion import FusionMode, TextBank, UserFusion, uniformity_loss
from ulmrec_index.quantizers.base import Quantizer, TrainableQuantizer
from ulmrec_index.quantizers.registry import create_quantizer

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """A fitted quantizer and fusion, and how the fusion ran."""

    quantizer: Quantizer
    fusion: UserFusion
    #: The fusion mode that ran (``attention`` asked of an untrainable quantizer runs as ``mean``).
    effective: FusionMode
    #: Joint-training epochs run (0: none).
    epochs: int
    #: Lines for the report (e.g. why ``attention`` ran as ``mean``).
    notes: list[str]


def is_trainable(quantizer: Quantizer) -> bool:
    """Whether ``quantizer`` can be trained by gradient with the fusion."""
    return isinstance(quantizer, TrainableQuantizer) and isinstance(quantizer, torch.nn.Module)


def set_eval(quantizer: Quantizer) -> None:
    """Put a torch quantizer in eval mode (others have no mode)."""
    if isinstance(quantizer, torch.nn.Module):
        quantizer.eval()


def fit_quantizer(cfg: IndexerConfig, bank: TextBank, fusion: FusionMode, timings: dict[str, float],
                  n_users: int) -> Fitted:
    """The quantizer fitted on the fused users (and, for ``attention``, trained jointly with the fusion);
    adds ``quantizer_fit`` and ``joint_train`` seconds to ``timings``."""
    t = time.perf_counter()
    torch.manual_seed(cfg.seed)
    quantizer = create_quantizer(cfg.quantizer)
    effective, notes = _effective_fusion(cfg, quantizer, fusion)
    fusion_module = UserFusion(mode=effective, num_users=n_users, text_dim=bank.dim,
                               id_dim=cfg.id_dim, attn_dim=cfg.attn_dim, id_weight=cfg.id_weight,
                               max_texts=cfg.max_texts, seed=cfg.seed)
    fusion_module.init_null(bank)
    x0 = fusion_module.fuse_all(bank)
    emit(message=f"fitting {cfg.quantizer.kind} on {n_users} users")  # pipeline progress
    quantizer.fit(x0)
    timings["quantizer_fit"] = time.perf_counter() - t

    t = time.perf_counter()
    epochs = 0
    if effective == "attention" and cfg.joint_epochs > 0:
        emit(message=f"joint training of the fusion and the quantizer ({cfg.joint_epochs} epochs)")
        epochs = joint_train(cfg, fusion_module, quantizer, bank)
    timings["joint_train"] = time.perf_counter() - t
    return Fitted(quantizer, fusion_module, effective, epochs, notes)


def _effective_fusion(cfg: IndexerConfig, quantizer: Quantizer,
                      fusion: FusionMode) -> tuple[FusionMode, list[str]]:
    """The fusion mode that can run with ``quantizer``, and a note when it is not the one asked."""
    if fusion == "attention" and not is_trainable(quantizer):
        note = f"fusion 'attention' ran as 'mean': quantizer {cfg.quantizer.kind!r} is not trainable"
        log.warning(note)
        return "mean", [note]
    return fusion, []


def joint_train(cfg: IndexerConfig, fusion: UserFusion, quantizer: Quantizer, bank: TextBank) -> int:
    """Adam on fusion + quantizer: ``forward(fusion(u)).loss + uniformity_weight * uniformity``; returns the
    number of epochs run. Both modules are left in eval mode."""
    assert isinstance(quantizer, torch.nn.Module)
    params = [p for p in fusion.parameters() if p.requires_grad] + [
        p for p in quantizer.parameters() if p.requires_grad
    ]
    optimizer = torch.optim.Adam(params, lr=cfg.joint_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    fusion.train()
    quantizer.train()
    n = bank.num_users
    for epoch in range(cfg.joint_epochs):
        order = torch.randperm(n, generator=gen)
        total = _joint_epoch(cfg, fusion, quantizer, bank, order, optimizer)
        log.info("joint epoch %d: loss %.5f", epoch + 1, total / n)
    quantizer.eval()
    fusion.eval()
    return cfg.joint_epochs


def _joint_epoch(cfg: IndexerConfig, fusion: UserFusion, quantizer: Any, bank: TextBank,
                 order: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One pass over the users in ``order`` (batches of one user skipped); the summed loss x batch size."""
    total = 0.0
    for i in range(0, len(order), cfg.joint_batch_size):
        users = order[i : i + cfg.joint_batch_size]
        if len(users) < 2:
            continue
        out = quantizer.forward(fusion(users, bank))
        loss = out.loss + cfg.uniformity_weight * uniformity_loss(fusion.id_directions(users[:512]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(users)
    return total

