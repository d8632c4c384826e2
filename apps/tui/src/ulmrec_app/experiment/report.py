"""``ulmrec experiment report RUNS... --out report/``: what each variant of an ablation buys, with paired
comparisons, in ``report.md``, ``report.json`` (:class:`ExperimentReport`) and PNG plots.

Inputs are experiment folders (``runs/<name>-experiment``, written by ``ulmrec experiment ablate``) or run
folders (variant = the run name without its ``-s<seed>`` suffix). For every run it reads the LLM's test
predictions (``rank/predictions.jsonl``), the retriever's order of the same candidates, the training
curve, the index report and the stage records; then, over the LLM's subset (users whose target the
retriever put among the candidates the LLM ranked):

* metrics by K of each variant (mean over seeds) and of the retriever's own order;
* each variant against ``full`` (and ``full`` against the retriever's order; ``text`` also against
  ``noindex``) as a paired difference over
  (seed, user) pairs, with a 95 % bootstrap interval and a sign-flip p-value (``ulmrec_eval.compare_ranks``);
* NDCG@10 by history length (1–4, 5–9, 10+ items);
* whether the LLM learned: its last next-item training loss against ln(number of candidates);
* training curves, index quality, wall time, hardware and versions.

Published figures are never mixed with measured ones: the report lists none (the ULMRec paper's table is not
transcribed, and the synthetic worlds have none).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ulmrec_align.models.train_manifest import TrainManifest
from ulmrec_app.experiment.ablate import EXPERIMENT_FILE, ExperimentManifest
from ulmrec_app.experiment.model import BUCKETS, KS, ExperimentReport, RunData, VariantRow
from ulmrec_app.pipeline.config import STAGES
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.layout import RunLayout, default_ranked_n
from ulmrec_app.pipeline.manifest import StageManifest
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model, read_jsonl_models
from ulmrec_eval.runtime.provenance import check_made_from
from ulmrec_eval.schemas import MetricComparison, RankedPrediction

BASELINE = "full"
#: Kinds of run also compared with another than the baseline: ``text`` (the preference in words, no index)
#: against ``noindex`` (no user information): what the user's own words add to the same prompt.
EXTRA_PAIRS = {"text": "noindex"}
RETRIEVER = "LRURec order"
#: What a run is, as far as the report pairs runs: ``index`` (user codes in its prompts, no control),
#: ``noindex``, ``text`` (no index, the preference in words), ``permuted`` or ``random`` (control codes).
KINDS = ("index", "noindex", "text", "permuted", "random")


# ------------------------------------------------------------------------------------------------ reading
def _runs_of(paths: list[Path]) -> list[tuple[Path, str, int]]:
    """``(run folder, variant, seed)`` of every run the paths name, each run once (a folder named twice, or
    by its experiment and by itself, is read once); two folders for one variant and seed are refused."""
    found: list[tuple[Path, str, int]] = []
    for path in paths:
        if (path / EXPERIMENT_FILE).is_file():
            manifest = ExperimentManifest.load(path)
            found += [(Path(manifest.runs_dir) / r.run, r.variant, r.seed) for r in manifest.runs]
        elif RunLayout(path).folder("rank").is_dir():
            match = re.match(r"^(.*)-s(\d+)$", path.name)
            found.append((path, match.group(1) if match else path.name, int(match.group(2)) if match else 0))
        else:
            raise PipelineError(
                f"{path}: neither an experiment folder ({EXPERIMENT_FILE}) nor a run folder with a rank stage"
            )
    unique: dict[Path, tuple[Path, str, int]] = {}
    for entry in found:
        unique.setdefault(entry[0].resolve(), entry)
    by_key: dict[tuple[str, int], Path] = {}
    for folder, variant, seed in unique.values():
        other = by_key.setdefault((variant, seed), folder)
        if other != folder:
            raise PipelineError(f"two runs of variant {variant}, seed {seed}: {other} and {folder}; a report "
                                "pairs one run per variant and seed (report each experiment on its own)")
    return list(unique.values())


def _check_comparable(runs: list[RunData]) -> None:
    """Refuse runs made on different data, candidates or pool sizes: their users are not the same users
    (dense ids mean other people in another dataset), so no pair of them may be compared."""
    checks: tuple[tuple[str, str, str], ...] = (
        ("datasets", "dataset_hash", "data {:.12}"),
        ("candidate sets", "candidates_hash", "candidates {:.12}"),
        ("pool sizes (the N each LLM ranked)", "n_candidates", "N={}"))
    for what, attribute, label in checks:
        groups: dict[Any, list[str]] = {}
        for run in runs:
            value = getattr(run, attribute)
            if value is not None:
                groups.setdefault(value, []).append(run.name)
        if len(groups) > 1:
            shown = "; ".join(f"{label.format(value)}: {', '.join(names)}" for value, names in groups.items())
            raise PipelineError(f"these runs differ in their {what} ({shown}): a report compares runs of one "
                                "dataset, one candidate set and one pool size; report each group on its own")


def _ranks(rows: list[RankedPrediction]) -> np.ndarray:
    from ulmrec_eval.evaluation import prediction_ranks

    return np.asarray(prediction_ranks(rows), dtype=np.int64)


def read_run(folder: Path, variant: str, seed: int) -> RunData:
    """The test predictions and records of one run (missing stages are a clear error)."""
    layout = RunLayout(folder)
    predictions, candidates = layout.predictions, layout.candidates
    for needed in (predictions, candidates):
        if not needed.is_file():
            raise PipelineError(f"{needed}: missing; run the variant first (`ulmrec experiment ablate`)")
        check_made_from(needed)   # as its stage wrote it, from the stages upstream of it now (reused too)
    llm = sorted(
        (p for p in read_jsonl_models(predictions, RankedPrediction) if p.split in (None, "test")),
        key=lambda p: str(p.user_id),
    )
    if not llm:
        raise PipelineError(f"{predictions}: no test predictions; rerun the run's rank stage (`ulmrec run` "
                            "its config with --from rank)")
    n = llm[0].retrieved_n or len(llm[0].candidates or []) or default_ranked_n()
    by_user = {p.user_id: p for p in read_jsonl_models(candidates, RankedPrediction) if p.split == "test"}
    strangers = [p.user_id for p in llm if p.user_id not in by_user]
    if strangers:
        raise PipelineError(f"{predictions}: {len(strangers)} predicted users are not among the retriever's "
                            f"test candidates in {candidates} (e.g. user {strangers[0]!r}): the predictions "
                            "were not made from these candidates; rerun the run")
    order = [
        by_user[p.user_id].model_copy(
            update={
                "candidates": (by_user[p.user_id].candidates or [])[:n],
                "scores": (by_user[p.user_id].scores or [])[:n],
            }
        )
        for p in llm
    ]
    from ulmrec_eval.runtime.artifacts import sha256_file

    manifest_path = layout.train_manifest
    train = read_json_model(manifest_path, TrainManifest) if manifest_path.is_file() else None
    stages: dict[str, StageManifest] = {}
    for stage in STAGES:
        record = StageManifest.load_or_none(layout.folder(stage)) if layout.folder(stage).exists() else None
        if record is not None:
            stages[stage] = record
    unfinished = [f"{name} is {record.effective_status()}" for name, record in stages.items()
                  if record.effective_status() != "done"]
    if unfinished:
        raise PipelineError(f"{folder}: {', '.join(unfinished)}: its predictions may not come from its "
                            "current stages; finish the run first (`ulmrec run` its config, or "
                            "`ulmrec experiment ablate` again)")
    return RunData(
        name=folder.name,
        variant=variant,
        seed=seed,
        folder=folder,
        users=[p.user_id for p in llm],
        llm_ranks=_ranks(llm),
        retriever_ranks=_ranks(order),
        in_subset=np.array([p.target in (p.candidates or []) for p in llm]),
        history=np.array([p.history_length or 0 for p in llm]),
        cold=_cold_flags(predictions, [p.user_id for p in llm]),
        n_candidates=n,
        curve=[point.model_dump() for point in train.curve] if train else [],
        validation=[point.model_dump() for point in train.history] if train else [],
        steps=train.steps if train else 0,
        stages=stages,
        ranking_loss=train is None or is_ranking_loss(train),
        candidates_hash=sha256_file(candidates),
        kind=run_kind(stages, variant),
        dataset_hash=stages["data"].output_hash if "data" in stages else None,
        fusion_weight=_fusion_weight(predictions),
    )


def run_kind(stages: dict[str, StageManifest], variant: str) -> str | None:
    """What the run is (:data:`KINDS`), read from the ``align build`` command its align stage ran; without
    that record, from the variant's name (``full``, ``noindex``, … or ``<name>-<variant>``); None when
    neither says."""
    from ulmrec_app.experiment.variants import VARIANTS

    align = stages.get("align")
    argv = next((c for c in (align.commands if align else []) if c[1:3] == ["align", "build"]), None)
    if argv is not None:
        def value(flag: str) -> str | None:
            return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

        if value("--index-permute") is not None:
            return "permuted"
        if value("--index-random") is not None:
            return "random"
        if str(value("--index") or "none").lower() == "none":   # `align build --index` defaults to none
            return "text" if "--user-text" in argv else "noindex"
        return "index"
    named = next((v for v in sorted(VARIANTS, key=len, reverse=True)
                  if variant == v or variant.endswith(f"-{v}")), None)
    if named in ("noindex", "text", "permuted", "random"):
        return named
    return None if named is None else "index"


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


def is_ranking_loss(train_manifest: TrainManifest) -> bool:
    """Whether a tuned model's next-item loss is a cross-entropy over its candidates, as its loss declares
    (``Loss.ranking_answers``): letter answers under ``--loss letters``, or ``--loss choices``; not the token
    loss of titles (or of letters under ``tokens``, whose one letter token is still over the whole
    vocabulary)."""
    from ulmrec_align.losses.registry import get_loss

    return get_loss(train_manifest.train.loss).ranks_candidates(train_manifest.prompt.answer)


def _fusion_weight(predictions: Path) -> float | None:
    """The ``fusion_weight`` of the run's test rows (one W per run), None when they were not fused."""
    import json

    with predictions.open(encoding="utf-8") as handle:
        weights = {json.loads(line).get("fusion_weight") for line in handle if line.strip()}
    if len(weights) > 1:
        raise PipelineError(f"{predictions}: rows fused at different weights {sorted(map(str, weights))}")
    return next(iter(weights), None)


def _cold_flags(predictions: Path, users: list[Any]) -> np.ndarray:
    """Per user (in ``users`` order): held out of LLM training (the rows' ``cold_start``; absent = no)."""
    import json

    flags: dict[str, bool] = {}
    with predictions.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if row.get("split") in (None, "test"):
                    flags[str(row["user_id"])] = bool(row.get("cold_start"))
    return np.array([flags.get(str(u), False) for u in users], dtype=bool)


# ------------------------------------------------------------------------------------------------ figures
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


def _wall(run: RunData) -> float:
    return float(sum(m.elapsed or 0.0 for m in run.stages.values() if m.reused_from is None))


def build_report(paths: list[Path]) -> tuple[ExperimentReport, dict[str, list[RunData]]]:
    """Read every run and compute the report (no files written)."""
    from ulmrec_eval.compare import compare_ranks

    runs = [read_run(folder, variant, seed) for folder, variant, seed in _runs_of(paths)]
    if not runs:
        raise PipelineError("no runs to report")
    _check_comparable(runs)
    by_variant: dict[str, list[RunData]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    n = runs[0].n_candidates
    rows = []
    baseline = choose_baseline(by_variant)
    for variant, group in [(RETRIEVER, by_variant.get(baseline or "") or runs[:1]), *by_variant.items()]:
        retriever = variant == RETRIEVER
        subsets = [_metrics((r.retriever_ranks if retriever else r.llm_ranks)[r.in_subset]) for r in group]
        overalls = [
            _metrics(r.retriever_ranks if retriever else r.llm_ranks, tuple(k for k in KS if k <= n))
            for r in group
        ]
        buckets = [
            _bucket_ndcg(
                (r.retriever_ranks if retriever else r.llm_ranks)[r.in_subset], r.history[r.in_subset]
            )
            for r in group
        ]
        colds = [
            _metrics((r.retriever_ranks if retriever else r.llm_ranks)[r.in_subset & r.cold])
            for r in group if (r.in_subset & r.cold).any()
        ]
        losses = [r.curve[-1].get("task_loss", {}).get("next_item") for r in group if r.curve]
        losses = [x for x in losses if x is not None]
        rows.append(
            VariantRow(
                variant=variant,
                seeds=sorted(r.seed for r in group),
                n_users=round(float(np.mean([int(r.in_subset.sum()) for r in group]))),
                subset=_mean_dicts(subsets),
                overall=_mean_dicts(overalls),
                buckets=_mean_dicts(buckets),
                cold_users=round(float(np.mean([int((r.in_subset & r.cold).sum()) for r in group]))),
                cold_subset=_mean_dicts(colds),
                last_next_item_loss=None if retriever or not losses else float(np.mean(losses)),
                ranking_loss=all(r.ranking_loss for r in group),
                steps=0 if retriever else int(np.mean([r.steps for r in group])),
                wall_seconds=0.0 if retriever else float(np.mean([_wall(r) for r in group])),
                fusion_weights=[] if retriever else [r.fusion_weight
                                                     for r in sorted(group, key=lambda r: r.seed)],
            )
        )
    comparisons: dict[str, list[MetricComparison]] = {}
    metrics = ["ndcg@10", "recall@1"]
    base = by_variant.get(baseline or "")
    if base and baseline is not None:
        ra, rb = _pairs(base, base, a_retriever=True)
        if len(ra):
            comparisons[f"{baseline} − {RETRIEVER}"] = compare_ranks(ra, rb, metrics=metrics).comparisons
        for variant, group in by_variant.items():
            if variant == baseline:
                continue
            ra, rb = _pairs(base, group)
            if len(ra):
                comparisons[f"{variant} − {baseline}"] = compare_ranks(ra, rb, metrics=metrics).comparisons
            ra, rb = _pairs(base, group, cold_only=True)
            if len(ra):
                comparisons[f"{variant} − {baseline}, cold-start users"] = compare_ranks(
                    ra, rb, metrics=metrics).comparisons
    for kind, reference_kind in EXTRA_PAIRS.items():
        references = _variant_of_kind(by_variant, reference_kind)
        if len(references) != 1:
            continue
        for variant in _variant_of_kind(by_variant, kind):
            ra, rb = _pairs(by_variant[references[0]], by_variant[variant])
            if len(ra):
                comparisons[f"{variant} − {references[0]}"] = compare_ranks(
                    ra, rb, metrics=metrics).comparisons
    chance = math.log(n)
    full_row = next((r for r in rows if r.variant == baseline), None)
    vs_retriever = comparisons.get(f"{baseline} − {RETRIEVER}", [])
    learned = bool(
        full_row
        and (not full_row.ranking_loss
             or (full_row.last_next_item_loss is not None and full_row.last_next_item_loss < chance))
        and vs_retriever
        and vs_retriever[0].difference > 0
        and vs_retriever[0].p_value < 0.05
    )
    first = (base or runs)[0]   # the baseline's index, not a variant's own
    index_report = {"run": first.name, **_index_summary(first.folder)}
    train_record = first.stages.get("train")
    report = ExperimentReport(
        runs=[r.name for r in runs],
        n_candidates=n,
        chance_loss=chance,
        rows=rows,
        comparisons=comparisons,
        learned=learned,
        baseline=baseline,
        index=index_report,
        hardware={"host": train_record.host, "device": train_record.device} if train_record else {},
        versions=dict(train_record.package_versions) if train_record else {},
        notes=[
            ("Cold-start users: held out of LLM training (`--cold-share`); their rows and comparisons are "
             "reported separately." if any(r.cold.any() for r in runs) else
             "Cold-start users: none held out in these runs (set `cold_share` in [index] and [align])."),
            "Published figures: none transcribed for these data; every figure here is measured.",
        ],
    )
    return report, by_variant


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: float(np.mean([d[k] for d in dicts if k in d])) for k in keys}


def _index_summary(folder: Path) -> dict[str, Any]:
    import json

    from ulmrec_index.artifact import REPORT_FILE

    path = RunLayout(folder).index / REPORT_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    ours = data.get("ours", {})
    return {
        "quantizer": data.get("quantizer"),
        "users": data.get("n_users"),
        "codes used per level": [lv.get("used") for lv in ours.get("levels", [])],
        "perplexity per level": [round(lv.get("perplexity", 0.0), 2) for lv in ours.get("levels", [])],
        "collisions after repair": data.get("repair", {}).get("collisions_after"),
        "text coherence ratio by prefix": [round(c.get("ratio", 0.0), 3) for c in ours.get("coherence", [])],
    }


# ------------------------------------------------------------------------------------------------ writing
def check_report_folder(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding anything but an earlier report: the report
    folder is replaced whole."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PipelineError(f"--out {out}: not a folder; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise PipelineError(f"--out {out} holds other files than a report ({shown}…); the report replaces "
                            "its folder whole: give a new or empty folder")


def write_report(report: ExperimentReport, by_variant: dict[str, list[RunData]], out: Path) -> Path:
    """``out/report.md``, ``out/report.json`` and the PNG plots (skipped with a note without matplotlib),
    written whole: a new folder replaces the previous report at once (a stale plot never survives, a
    killed write leaves the previous report)."""
    from ulmrec_eval.runtime.artifacts import atomic_dir

    check_report_folder(out)
    with atomic_dir(out, force=True) as tmp:
        try:
            from ulmrec_app.experiment.plots import draw_all

            report.plots = [str(out.absolute() / Path(p).name) for p in draw_all(report, by_variant, tmp)]
        except ImportError:
            report.notes.append("Plots skipped: matplotlib is not installed (pip install matplotlib).")
        atomic_write_text(tmp / "report.json", report.model_dump_json(indent=2) + "\n")
        atomic_write_text(tmp / "report.md", render_markdown(report))
    return out / "report.md"


def render_markdown(report: ExperimentReport) -> str:
    n = report.n_candidates
    lines = ["# Ablation report", ""]
    full = next((r for r in report.rows if r.variant == report.baseline), None)
    ranking_loss = full is None or full.ranking_loss
    loss_test = (f"its last next-item training loss is not below ln({n}) = {report.chance_loss:.3f} or "
                 if ranking_loss else "")
    verdict = (
        "**No baseline**: none of these variants is full ULMRec (named `full`, or the only run with a user "
        "index and no control), so nothing is compared with it and nothing says whether the LLM learned; "
        "report the runs with their full ULMRec run."
        if report.baseline is None
        else "The LLM learned: full ULMRec ranks above the retriever's own order (paired, p < 0.05)"
        + (" and its next-item loss is below ln(n)." if ranking_loss else ".")
        if report.learned
        else f"**The LLM has not learned to rank here**: {'either ' if ranking_loss else ''}{loss_test}it "
        "does not rank above the retriever's own order (paired, p < 0.05). Differences between variants "
        "below are then differences between rankers that lose to the retriever."
    )
    lines += [
        verdict,
        "",
        *([f"Full ULMRec (the baseline of every comparison): {report.baseline}.", ""] if report.baseline
          else []),
        f"Runs: {', '.join(report.runs)}. Each LLM ranks the retriever's top {n}; subset = "
        "test users whose target is among them; paired comparisons over (seed, user) pairs of the "
        "subset, 95 % bootstrap interval, two-sided sign-flip p-value.",
        "",
    ]
    ks = [f"ndcg@{k}" for k in KS] + ["recall@1", "recall@10"]
    lines += [
        "## Metrics (subset, mean over seeds)",
        "",
        "| variant | seeds | users | " + " | ".join(ks) + " | NDCG@10 overall | next-item loss | steps |"
        " wall s | W |",
        "|---" * (len(ks) + 8) + "|",
    ]
    for row in report.rows:
        loss = "—" if row.last_next_item_loss is None else f"{row.last_next_item_loss:.3f}"
        lines.append(
            f"| {row.variant} | {','.join(map(str, row.seeds))} | {row.n_users} | "
            + " | ".join(f"{row.subset.get(k, float('nan')):.4f}" for k in ks)
            + f" | {row.overall.get('ndcg@10', float('nan')):.4f} | {loss} | {row.steps or '—'} | "
            + (f"{row.wall_seconds:.0f}" if row.wall_seconds else "—")
            + " | " + (", ".join("—" if w is None else f"{w:g}" for w in row.fusion_weights) or "—")
            + " |"
        )
    lines += [
        "",
        f"ln({n}) = {report.chance_loss:.3f}: a next-item (ranking) loss at or above it learned nothing."
        if ranking_loss else
        "Next-item loss: the token loss of the target's title, per token (title answers); no chance level "
        f"of ln({n}) applies to it.",
        "",
        "## Paired differences (B − A)",
        "",
        "| B − A | metric | users | A | B | B − A | 95 % CI | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, comps in report.comparisons.items():
        for c in comps:
            lines.append(
                f"| {label} | {c.metric} | {c.n_users} | {c.mean_a:.4f} | {c.mean_b:.4f} | "
                f"{c.difference:+.4f} | [{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.p_value:.3g} |"
            )
    lines += [
        "",
        "## NDCG@10 by history length (subset)",
        "",
        "| variant | " + " | ".join(b[2] for b in BUCKETS) + " |",
        "|---" * (len(BUCKETS) + 1) + "|",
    ]
    for row in report.rows:
        lines.append(
            f"| {row.variant} | "
            + " | ".join(f"{row.buckets[b[2]]:.4f}" if b[2] in row.buckets else "—" for b in BUCKETS)
            + " |"
        )
    if any(row.cold_users for row in report.rows):
        lines += [
            "",
            "## Cold-start users (held out of LLM training; subset)",
            "",
            "| variant | users | NDCG@10 | Recall@1 | Recall@10 |",
            "|---|---|---|---|---|",
        ]
        for row in report.rows:
            if row.cold_users:
                lines.append(f"| {row.variant} | {row.cold_users} | "
                             + " | ".join(f"{row.cold_subset.get(k, float('nan')):.4f}"
                                          for k in ("ndcg@10", "recall@1", "recall@10")) + " |")
    if report.index:
        lines += ["", "## User index (of the full variant's first run)", ""]
        lines += [f"- {key}: {value}" for key, value in report.index.items()]
    lines += ["", "## Machine and versions", ""]
    lines += [f"- {k}: {v}" for k, v in {**report.hardware, **report.versions}.items()]
    if report.plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report.plots]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"
