"""The text/ID fusion module: shapes, the three modes, the ID path and gradients."""

from __future__ import annotations

import pytest
import torch

from ulmrec_index.fusion import TextBank, UserFusion, uniformity_loss


def _bank() -> TextBank:
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(7, 8, generator=gen), dim=1)
    # user 0: 3 texts, user 1: none, user 2: 1 text, user 3: 3 texts (same first text as user 2)
    emb[6] = emb[3]
    return TextBank(emb, torch.tensor([0, 3, 3, 4, 7]))


def test_none_is_the_plain_mean_and_null_for_no_text() -> None:
    bank = _bank()
    fusion = UserFusion(mode="none", num_users=4, text_dim=8)
    fusion.init_null(bank)
    x = fusion.fuse_all(bank)
    torch.testing.assert_close(x[0], bank.embeddings[:3].mean(0))
    torch.testing.assert_close(x[2], bank.embeddings[3])
    torch.testing.assert_close(x[1], fusion.null.detach())
    assert list(fusion.parameters()) == [fusion.null]
    assert not fusion.null.requires_grad


def test_mean_adds_a_fixed_id_term_of_norm_w() -> None:
    bank = _bank()
    fusion = UserFusion(mode="mean", num_users=4, text_dim=8, id_weight=0.3, seed=1)
    fusion.init_null(bank)
    offset = fusion.fuse_all(bank) - UserFusion(mode="none", num_users=4, text_dim=8).fuse_all(bank)
    offset[1] -= fusion.null.detach()
    torch.testing.assert_close(offset.norm(dim=1), torch.full((4,), 0.3))
    assert not any(p.requires_grad for p in fusion.parameters())
    # users without text are told apart by the ID term alone
    assert not torch.allclose(offset[1], offset[2])


def test_attention_pools_within_the_users_own_texts_and_trains() -> None:
    bank = _bank()
    fusion = UserFusion(mode="attention", num_users=4, text_dim=8, id_weight=0.2, seed=0)
    fusion.init_null(bank)
    users = torch.arange(4)
    pooled = fusion.pooled(users, bank)
    # user 0's pool is a convex combination of its 3 texts: solve for the weights
    weights = torch.linalg.lstsq(bank.embeddings[:3].T, pooled[0].unsqueeze(1)).solution.squeeze(1)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert (weights > -1e-5).all()
    torch.testing.assert_close(pooled[2], bank.embeddings[3])  # one text: the pool is that text
    x = fusion(users, bank)
    (x.pow(2).sum() + uniformity_loss(fusion.id_directions(users))).backward()
    for name in ("id_embedding", "w_q", "w_k", "w_m", "w_o", "null"):
        grad = getattr(fusion, name).grad
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
    assert fusion.id_embedding.grad is not None
    assert fusion.id_embedding.grad[1].abs().sum() > 0


def test_max_texts_keeps_the_last_texts() -> None:
    bank = _bank()
    texts, mask = bank.padded(torch.tensor([0, 1]), max_texts=2)
    assert texts.shape == (2, 2, 8)
    assert mask.tolist() == [[True, True], [False, False]]
    torch.testing.assert_close(texts[0], bank.embeddings[1:3])


def test_uniformity_prefers_spread_directions() -> None:
    same = torch.nn.functional.normalize(torch.ones(6, 4), dim=1)
    spread = torch.eye(4)
    assert uniformity_loss(spread) < uniformity_loss(same)
    assert uniformity_loss(same[:1]).item() == 0.0


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="fusion mode"):
        UserFusion(mode="concat", num_users=1, text_dim=2)  # type: ignore[arg-type]
