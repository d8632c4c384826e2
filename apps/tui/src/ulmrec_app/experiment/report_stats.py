"""What ``ulmrec experiment report`` computes from runs already read (``report_data``): the baseline, a row of
metrics per variant (and of the retriever's own order), the paired comparisons, and whether the LLM
learned, as an :class:`ExperimentReport`. Nothing here reads a file or renders text."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ulmrec_app.experiment.model import BUCKETS, KS, ExperimentReport, RunData, VariantRow
from ulmrec_eval.schemas import MetricComparison

BASELINE = "full"
#: Kinds of run also compared with another than the baseline: ``text`` (the preference in words, no index)
#: against ``noindex`` (no user information): what the user's own words add to the same prompt.
EXTRA_PAIRS = {"text": "noindex"}
RETRIEVER = "LRURec order"
#: The metrics of every paired comparison.
COMPARED = ["ndcg@10", "recall@1"]


# ------------------------------------------------------------------------------------------ which variants
def by_variant_of(runs: list[RunData]) -> dict[str, list[RunData]]:
    """The runs grouped by variant, in the order they come."""
    groups: dict[str, list[RunData]] = {}
    for run in runs:
        groups.setdefault(run.variant, []).append(run)
    return groups


def choose_baseline(by_variant: dict[str, list[RunData]]) -> str | None:
    """The variant every other is compared with (full ULMRec): the one named ``full`` (or ``<name>-full``),
    else the only one whose runs use an index with no control (the demo's ``demo`` beside
    ``demo-noindex``), else the only variant; None when that is ambiguous."""
    kinds = {v: {r.kind for r in group} for v, group in by_variant.items()}
    named = [v for v in by_variant if (v == BASELINE or v.endswith(f"-{BASELINE}")) and kinds[v] <= {"index"}]
    if len(named) == 1:
        return named[0]
    indexed = [v for v, k in kinds.items() if k == {"index"}]
    if len(indexed) == 1:
        return indexed[0]
    return next(iter(by_variant)) if len(by_variant) == 1 else None


def _variant_of_kind(by_variant: dict[str, list[RunData]], kind: str) -> list[str]:
    return [v for v, group in by_variant.items() if all(r.kind == kind for r in group)]


# ------------------------------------------------------------------------------------------ figures
def _metrics(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    from ulmrec_eval.metrics import compute_metrics

    return {k: float(v) for k, v in compute_metrics(ranks, ks=ks).items()} if len(ranks) else {}


def _bucket_ndcg(ranks: np.ndarray, history: np.ndarray) -> dict[str, float]:
    out = {}
    for low, high, label in BUCKETS:
        mask = (history >= low) & (history <= (high if high is not None else 10**9))
        if mask.any():
            out[label] = _metrics(ranks[mask], (10,))["ndcg@10"]
    return out


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: float(np.mean([d[k] for d in dicts if k in d])) for k in keys}


def _wall(run: RunData) -> float:
    return float(sum(m.elapsed or 0.0 for m in run.stages.values() if m.reused_from is None))


def _variant_row(variant: str, group: list[RunData], *, retriever: bool, n: int) -> VariantRow:
    """The row of one variant, the mean over its seeds (``retriever``: of the retriever's own order of the
    same candidates, with no training figures)."""
    def ranks(r: RunData) -> np.ndarray:
        return r.retriever_ranks if retriever else r.llm_ranks

    losses = [r.curve[-1].get("task_loss", {}).get("next_item") for r in group if r.curve]
    losses = [x for x in losses if x is not None]
    return VariantRow(
        variant=variant,
        seeds=sorted(r.seed for r in group),
        n_users=round(float(np.mean([int(r.in_subset.sum()) for r in group]))),
        subset=_mean_dicts([_metrics(ranks(r)[r.in_subset]) for r in group]),
        overall=_mean_dicts([_metrics(ranks(r), tuple(k for k in KS if k <= n)) for r in group]),
        buckets=_mean_dicts([_bucket_ndcg(ranks(r)[r.in_subset], r.history[r.in_subset]) for r in group]),
        cold_users=round(float(np.mean([int((r.in_subset & r.cold).sum()) for r in group]))),
        cold_subset=_mean_dicts([_metrics(ranks(r)[r.in_subset & r.cold])
                                 for r in group if (r.in_subset & r.cold).any()]),
        last_next_item_loss=None if retriever or not losses else float(np.mean(losses)),
        ranking_loss=all(r.ranking_loss for r in group),
        steps=0 if retriever else int(np.mean([r.steps for r in group])),
        wall_seconds=0.0 if retriever else float(np.mean([_wall(r) for r in group])),
        fusion_weights=[] if retriever else [r.fusion_weight for r in sorted(group, key=lambda r: r.seed)],
    )


def variant_rows(runs: list[RunData], by_variant: dict[str, list[RunData]],
                 baseline: str | None) -> list[VariantRow]:
    """The retriever's order (over the baseline's runs, or the first run) first, then each variant."""
    n = runs[0].n_candidates
    retriever = (RETRIEVER, by_variant.get(baseline or "") or runs[:1])
    return [_variant_row(variant, group, retriever=variant == RETRIEVER, n=n)
            for variant, group in [retriever, *by_variant.items()]]


# ------------------------------------------------------------------------------------------ comparisons
def _pairs(
    a: list[RunData], b: list[RunData], *, b_retriever: bool = False, a_retriever: bool = False,
    cold_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of A and B over the (seed, user) pairs both have, in the subset of both (``cold_only``: and
    held out of A's training)."""
    ra, rb = [], []
    by_seed = {r.seed: r for r in b}
    for run_a in a:
        run_b = by_seed.get(run_a.seed)
        if run_b is None:
            continue
        index_b = {u: i for i, u in enumerate(run_b.users)}
        for i, user in enumerate(run_a.users):
            j = index_b.get(user)
            if j is None or not (run_a.in_subset[i] and run_b.in_subset[j]):
                continue
            if cold_only and not run_a.cold[i]:
                continue
            ra.append(run_a.retriever_ranks[i] if a_retriever else run_a.llm_ranks[i])
            rb.append(run_b.retriever_ranks[j] if b_retriever else run_b.llm_ranks[j])
    return np.array(ra, dtype=np.int64), np.array(rb, dtype=np.int64)


def _compare(into: dict[str, list[MetricComparison]], label: str, a: list[RunData], b: list[RunData],
             **pairing: bool) -> None:
    """``into[label]``: B against A over their shared (seed, user) pairs, when they have any."""
    from ulmrec_eval.compare import compare_ranks

    ra, rb = _pairs(a, b, **pairing)
    if len(ra):
        into[label] = compare_ranks(ra, rb, metrics=COMPARED).comparisons


def comparisons(
    by_variant: dict[str, list[RunData]], baseline: str | None
) -> dict[str, list[MetricComparison]]:
    """``'B − A'`` → paired comparisons: the baseline against the retriever's order, each variant against the
    baseline (and on the cold-start users alone), then the :data:`EXTRA_PAIRS`."""
    out: dict[str, list[MetricComparison]] = {}
    base = by_variant.get(baseline or "")
    if base and baseline is not None:
        _compare(out, f"{baseline} − {RETRIEVER}", base, base, a_retriever=True)
        for variant, group in by_variant.items():
            if variant != baseline:
                _compare(out, f"{variant} − {baseline}", base, group)
                _compare(out, f"{variant} − {baseline}, cold-start users", base, group, cold_only=True)
    for kind, reference_kind in EXTRA_PAIRS.items():
        references = _variant_of_kind(by_variant, reference_kind)
        if len(references) != 1:
            continue
        for variant in _variant_of_kind(by_variant, kind):
            _compare(out, f"{variant} − {references[0]}", by_variant[references[0]], by_variant[variant])
    return out


def learned(rows: list[VariantRow], compared: dict[str, list[MetricComparison]], baseline: str | None,
            chance: float) -> bool:
    """The LLM learned: the baseline ranks above the retriever's order (paired, p < 0.05) and, for a ranking
    loss, its last next-item loss is below ``chance`` (ln N)."""
    full_row = next((r for r in rows if r.variant == baseline), None)
    vs_retriever = compared.get(f"{baseline} − {RETRIEVER}", [])
    return bool(
        full_row
        and (not full_row.ranking_loss
             or (full_row.last_next_item_loss is not None and full_row.last_next_item_loss < chance))
        and vs_retriever
        and vs_retriever[0].difference > 0
        and vs_retriever[0].p_value < 0.05
    )


# ------------------------------------------------------------------------------------------ the report
def _notes(runs: list[RunData]) -> list[str]:
    return [
        ("Cold-start users: held out of LLM training (`--cold-share`); their rows and comparisons are "
         "reported separately." if any(r.cold.any() for r in runs) else
         "Cold-start users: none held out in these runs (set `cold_share` in [index] and [align])."),
        "Published figures: none transcribed for these data; every figure here is measured.",
    ]


def compute_report(runs: list[RunData], by_variant: dict[str, list[RunData]], baseline: str | None,
                   index: dict[str, Any]) -> ExperimentReport:
    """The report of runs already read and grouped, ``index`` the baseline's index summary."""
    n = runs[0].n_candidates
    rows = variant_rows(runs, by_variant, baseline)
    compared = comparisons(by_variant, baseline)
    chance = math.log(n)
    train_record = (by_variant.get(baseline or "") or runs)[0].stages.get("train")
    return ExperimentReport(
        runs=[r.name for r in runs],
        n_candidates=n,
        chance_loss=chance,
        rows=rows,
        comparisons=compared,
        learned=learned(rows, compared, baseline, chance),
        baseline=baseline,
        index=index,
        hardware={"host": train_record.host, "device": train_record.device} if train_record else {},
        versions=dict(train_record.package_versions) if train_record else {},
        notes=_notes(runs),
    )
