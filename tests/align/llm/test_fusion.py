"""`align rank --fuse-retriever auto|W`: the LLM's scores plus W times the retriever's standardised scores,
W chosen on validation users, so a weak LLM cannot rank below the retriever on validation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline
from support.cli import run_ulmrec

from ulmrec_align.ranking.fusion import WEIGHT_GRID, choose_weight, fuse, ndcg_at_10, standardise
from ulmrec_align.ranking.ranker import RankRow
from ulmrec_align.retrieval.candidates import CandidateRow


def _pair(user: int, llm: list[float], retriever: list[float], target: int,
          split: str = "valid") -> tuple[RankRow, CandidateRow]:
    items = list(range(100, 100 + len(llm)))
    row = RankRow(user_id=user, raw_user_id=f"u{user}", split=split, target=target,  # type: ignore[arg-type]
                  candidates=items, scores=llm, source="logits:m", history_length=3, retrieved_n=len(items))
    # the retriever's row lists the same items in another order, with more candidates after them
    order = list(reversed(range(len(items))))
    retrieved = CandidateRow(user_id=user, raw_user_id=f"u{user}", split=split,  # type: ignore[arg-type]
                             candidates=[items[i] for i in order] + [999],
                             scores=[retriever[i] for i in order] + [-50.0], target=target,
                             target_in_candidates=True, history_length=3)
    return row, retrieved


def test_standardise_and_the_extremes_of_w() -> None:
    assert standardise([2.0, 2.0]).tolist() == [0.0, 0.0]
    row, retrieved = _pair(0, llm=[-1.0, -2.0, -3.0], retriever=[0.1, 0.9, 0.5], target=101)
    assert fuse(row, retrieved, 0.0).scores == pytest.approx(standardise(row.scores).tolist())  # LLM alone
    big = fuse(row, retrieved, 64.0)
    assert list(np.argsort(big.scores)[::-1]) == [1, 2, 0]        # the retriever's order (aligned by item)
    assert big.fusion_weight == 64.0
    assert big.source == "fused(w=64):logits:m"


def test_auto_picks_the_retriever_when_the_llm_is_noise_and_the_llm_when_it_is_right() -> None:
    rng = np.random.default_rng(0)
    noise, right = [], []
    for user in range(40):
        target = int(rng.integers(5))
        retriever = rng.normal(size=5).tolist()
        retriever[target] = max(retriever) + 1.0                    # the retriever always puts it first
        noise.append(_pair(user, rng.normal(size=5).tolist(), retriever, 100 + target))
        llm = [-5.0] * 5
        llm[target] = 0.0
        right.append(_pair(user, llm, rng.normal(size=5).tolist(), 100 + target))
    chosen = choose_weight([r for r, _ in noise], {("valid", r.user_id): c for r, c in noise})
    assert chosen.weight > 0
    assert chosen.ndcg_by_weight[chosen.weight] == pytest.approx(1.0)
    assert chosen.ndcg_by_weight[0.0] < 0.8
    assert "retriever 1.0000" in chosen.describe()
    kept = choose_weight([r for r, _ in right], {("valid", r.user_id): c for r, c in right})
    assert kept.ndcg_by_weight[kept.weight] == pytest.approx(1.0)   # the LLM decides: it is right
    assert kept.weight < 1.0             # the largest W within one standard error of the best (here: equal)
    assert set(kept.ndcg_by_weight) == set(WEIGHT_GRID)
    assert ndcg_at_10([r for r, _ in right]) == pytest.approx(1.0)


def test_cli_fuses_with_a_weight_chosen_on_validation(pipeline: Pipeline, tiny_llm: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "fused.jsonl"
    args = ["align", "rank", "--model", tiny_llm, "--data", pipeline.data, "--candidates",
            pipeline.candidates, "--index", pipeline.index, "--limit", "12", "--no-progress"]
    proc = run_ulmrec(*args, "--fuse-retriever", "auto", "--out", out, check=True)
    assert "fused with the retriever: W=" in proc.stderr
    assert "chosen on 12 validation users" in proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12
    assert {r["split"] for r in rows} == {"test"}
    assert len({r["fusion_weight"] for r in rows}) == 1
    assert rows[0]["source"].startswith("fused(w=")
    refused = run_ulmrec(*args, "--fuse-retriever", "auto", "--split", "valid", "--out", tmp_path / "v.jsonl")
    assert refused.returncode == 1
    assert "chooses W on the validation users" in refused.stderr
    bad = run_ulmrec(*args, "--fuse-retriever", "-1", "--out", tmp_path / "b.jsonl")
    assert "must be 'auto' or a number >= 0" in bad.stderr


def test_the_llm_is_standardised_so_w_does_not_depend_on_its_scale() -> None:
    """``z(llm) + W·z(retriever)``: multiplying the LLM's scores by 1000 (log-odds vs log-probabilities)
    changes no fused order; the grid runs from the LLM alone through 0.01 … 100, 10 % apart."""
    rng = np.random.default_rng(1)
    for user in range(20):
        llm, ret = rng.normal(size=6).tolist(), rng.normal(size=6).tolist()
        row, retrieved = _pair(user, llm, ret, target=100)
        big, _ = _pair(user, [1000 * v for v in llm], ret, target=100)
        for weight in (0.0, 0.5, 3.0):
            assert fuse(row, retrieved, weight).scores == pytest.approx(fuse(big, retrieved, weight).scores)
        fused = fuse(row, retrieved, 1.0)
        assert fused.llm_scores == llm                                   # the LLM alone stays evaluable
    assert WEIGHT_GRID[0] == 0.0
    assert WEIGHT_GRID[1] == pytest.approx(0.01)
    assert WEIGHT_GRID[-1] == pytest.approx(100.0)
    ratios = np.array(WEIGHT_GRID[2:]) / np.array(WEIGHT_GRID[1:-1])
    assert np.allclose(ratios, 10 ** 0.05, rtol=1e-3)


def test_a_gain_inside_the_noise_keeps_the_retrievers_order() -> None:
    """One-standard-error rule: on 5 validation users the LLM wins 3 and loses 2 (its best W beats the
    retriever's order by 0.074 NDCG@10, one standard error is about 0.18), so W goes to the top of the grid;
    with 60 users winning the same way and none losing, the LLM's W is kept."""
    from ulmrec_align.ranking.fusion import best_weight

    retriever = [1.0, 0.9, 0.0]
    llm = [0.0, 1.0, 0.0]              # always prefers the retriever's second candidate
    targets = [1, 0, 1, 0, 1]          # right for users 0, 2, 4; wrong for 1, 3
    weight, scored = best_weight([llm] * 5, [retriever] * 5, targets)
    assert max(scored.values()) > scored[WEIGHT_GRID[-1]] + 0.07
    assert weight == WEIGHT_GRID[-1]
    weight, scored = best_weight([llm] * 60, [retriever] * 60, [1] * 60)
    assert scored[weight] == pytest.approx(1.0)      # the LLM's order kept (the largest W that still has it)
    assert scored[WEIGHT_GRID[-1]] == pytest.approx(1 / np.log2(3))


def test_the_retrievers_prior_weight_is_its_likelihood_temperature() -> None:
    """``prior_weight`` recovers the β that drew the targets from softmax(β z(r)) (900 pools of 10), is 0
    for a retriever that is no better than chance, and leaves out pools whose target it missed."""
    from ulmrec_align.ranking.fusion import prior_weight

    rng = np.random.default_rng(0)
    scores = [rng.normal(size=10) for _ in range(900)]
    targets = []
    for s in scores:
        p = np.exp(1.5 * standardise(s))
        targets.append(int(rng.choice(10, p=p / p.sum())))
    assert prior_weight(scores, targets) == pytest.approx(1.5, abs=0.15)
    reversed_targets = [int(np.argmin(s)) for s in scores]          # the target is always its worst item
    assert prior_weight(scores, reversed_targets) == 0.0
    assert prior_weight([*scores, [1.0, 0.0]], [*targets, -1]) == prior_weight(scores, targets)
    with pytest.raises(Exception, match="no validation pool"):
        prior_weight([[1.0, 0.0]], [-1])
