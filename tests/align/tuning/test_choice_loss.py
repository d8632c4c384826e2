"""``--loss choices`` for title answers: the listwise cross-entropy reads each choice's likelihood exactly as
the title ranker does (prompt cache shared, or whole rows when the model keeps no cache), its gradient reaches
the model, and rows without choices keep the token loss in the same batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ulmrec_align.models import load_causal_lm, load_tokenizer
from ulmrec_align.models.kv_cache import cache_name
from ulmrec_align.ranking.ranker import null_title_prompt
from ulmrec_align.ranking.scorer import choice_log_likelihoods
from ulmrec_align.tasks.schema import read_samples
from ulmrec_align.tuning.data import PadCollator, encode_samples
from ulmrec_align.tuning.loss import alignment_loss, choice_scores

from .conftest import make_samples


class NoCache(torch.nn.Module):
    """The model with its key/value cache turned off (as activation checkpointing does while training)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, **kwargs: Any) -> Any:
        kwargs["use_cache"] = False
        kwargs.pop(cache_name(), None)
        out = self.model(**kwargs)
        setattr(out, cache_name(), None)
        return out


@pytest.fixture(scope="module")
def title_batch(tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Any], Any]:
    tokenizer = load_tokenizer(tiny_llm)
    folder = make_samples(tmp_path_factory.mktemp("titles"), n_train=4, n_valid=1, answer="title")
    samples = read_samples(folder, "train")
    samples[3] = samples[3].model_copy(update={"choices": None})     # a row that keeps the token loss
    data, _ = encode_samples(tokenizer, samples, index_tokens="plain", max_length=512)
    return tokenizer, data.rows, PadCollator(pad_id=int(tokenizer.pad_token_id), choices=True)(data.rows)


def test_choice_scores_are_the_rankers_title_likelihoods(tiny_llm: Path, title_batch: Any) -> None:
    tokenizer, rows, batch = title_batch
    model = load_causal_lm(tiny_llm)
    model.eval()
    assert batch["choice_rows"].tolist() == [0, 1, 2]
    want = choice_log_likelihoods(model, [r["input_ids"][: r["prompt_length"]] for r in rows[:3]],
                                  [r["choice_ids"] for r in rows[:3]], pad_id=int(tokenizer.pad_token_id))
    with torch.no_grad():
        cached = choice_scores(model, dict(batch))
        whole = choice_scores(NoCache(model), dict(batch))
    flat = [v for row in want for v in row]
    assert cached.flatten().tolist() == pytest.approx(flat, abs=1e-4)
    assert whole.flatten().tolist() == pytest.approx(flat, abs=1e-4)


def test_with_the_null_prompt_the_score_is_the_rankers_calibrated_score(tiny_llm: Path,
                                                                         title_batch: Any) -> None:
    """``s_j = log p(t_j | prompt) − log p(t_j | ∅)``, ``∅`` = the ranker's content-free prompt, with no
    gradient through the prior."""
    tokenizer, rows, _ = title_batch
    null = null_title_prompt(tokenizer)
    batch = PadCollator(pad_id=int(tokenizer.pad_token_id), choices=True, null_prompt=tuple(null))(rows)
    model = load_causal_lm(tiny_llm)
    model.eval()
    pad = int(tokenizer.pad_token_id)
    plain = choice_log_likelihoods(model, [r["input_ids"][: r["prompt_length"]] for r in rows[:3]],
                                   [r["choice_ids"] for r in rows[:3]], pad_id=pad)
    prior = choice_log_likelihoods(model, [null] * 3, [r["choice_ids"] for r in rows[:3]], pad_id=pad)
    scores = choice_scores(model, dict(batch))
    want = [p - q for ps, qs in zip(plain, prior, strict=True) for p, q in zip(ps, qs, strict=True)]
    assert scores.flatten().tolist() == pytest.approx(want, abs=1e-4)
    scores.sum().backward()          # the gradient of the prior-free part only: equal to the plain score's
    calibrated = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    batch.pop("choice_null_ids")
    choice_scores(model, dict(batch)).sum().backward()
    plain_grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.allclose(a, b) for a, b in zip(calibrated, plain_grads, strict=True))


def test_choices_loss_is_listwise_on_titles_and_tokens_elsewhere(tiny_llm: Path, title_batch: Any) -> None:
    _, _rows, batch = title_batch
    model = load_causal_lm(tiny_llm)
    model.eval()
    loss, row_sum, items = alignment_loss(model, dict(batch), kind="choices", letter_ids=[])
    with torch.no_grad():
        scores = choice_scores(model, dict(batch))
        listwise = torch.nn.functional.cross_entropy(scores, batch["choice_target"], reduction="none")
        _, token_sum, token_items = alignment_loss(model, dict(batch), kind="tokens", letter_ids=[])
    assert items.tolist() == [1, 1, 1, token_items[3].item()]
    assert row_sum[:3].tolist() == pytest.approx(listwise.tolist(), abs=1e-4)
    assert row_sum[3].item() == pytest.approx(token_sum[3].item(), rel=1e-4)
    assert loss.item() == pytest.approx((listwise.sum() + token_sum[3]).item() / items.sum().item(), rel=1e-4)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_without_choices_the_collator_adds_nothing(title_batch: Any) -> None:
    tokenizer, rows, _ = title_batch
    batch = PadCollator(pad_id=int(tokenizer.pad_token_id))(rows)
    assert not any(k.startswith("choice") for k in batch)


def test_samples_without_pools_are_refused_under_choices(tiny_llm: Path, tmp_path: Path) -> None:
    """Title samples built before they kept their pool would silently fall back to the token loss."""
    from ulmrec_align.tuning.config import TrainSettings
    from ulmrec_align.tuning.request import TrainRequest
    from ulmrec_align.tuning.run import run_training
    from ulmrec_eval.runtime.errors import InputError
    from ulmrec_eval.runtime.io import atomic_write_jsonl

    folder = make_samples(tmp_path / "S", n_train=4, n_valid=2, answer="title")
    atomic_write_jsonl(folder / "train.jsonl", [s.model_copy(update={"candidates": None, "choices": None})
                                                for s in read_samples(folder, "train")])
    with pytest.raises(InputError, match="no training sample carries its pool"):
        run_training(TrainRequest(samples=folder, model=str(tiny_llm), out=tmp_path / "T", progress=False,
                                  train=TrainSettings(max_steps=1, loss="choices")))
    assert not (tmp_path / "T").exists()
