"""Reading an ablation's runs for ``ulmrec experiment report``: which runs the given folders name, and each
run's test predictions, the retriever's order of the same candidates, its training curve, its stage records
and its index report (:class:`RunData`); runs made on other data, candidates or pool sizes are refused.
Nothing here computes a metric (``report_stats``) or writes a file (``report``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ulmrec_align.models.train_manifest import TrainManifest
from ulmrec_app.experiment.ablate import EXPERIMENT_FILE, ExperimentManifest
from ulmrec_app.experiment.model import RunData
from ulmrec_app.pipeline.config import STAGES
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.layout import RunLayout, default_ranked_n
from ulmrec_app.pipeline.manifest import StageManifest
from ulmrec_eval.runtime.io import read_json_model, read_jsonl_models
from ulmrec_eval.runtime.provenance import check_made_from
from ulmrec_eval.schemas import RankedPrediction

#: What a run is, as far as the report pairs runs: ``index`` (user codes in its prompts, no control),
#: ``noindex``, ``text`` (no index, the preference in words), ``permuted`` or ``random`` (control codes).
KINDS = ("index", "noindex", "text", "permuted", "random")


# ------------------------------------------------------------------------------------------ which runs
def _named_runs(path: Path) -> list[tuple[Path, str, int]]:
    """``(run folder, variant, seed)`` of the runs one path names: an experiment folder's runs, or the run
    folder itself (variant = its name without the ``-s<seed>`` suffix)."""
    if (path / EXPERIMENT_FILE).is_file():
        manifest = ExperimentManifest.load(path)
        return [(Path(manifest.runs_dir) / r.run, r.variant, r.seed) for r in manifest.runs]
    if RunLayout(path).folder("rank").is_dir():
        match = re.match(r"^(.*)-s(\d+)$", path.name)
        return [(path, match.group(1) if match else path.name, int(match.group(2)) if match else 0)]
    raise PipelineError(
        f"{path}: neither an experiment folder ({EXPERIMENT_FILE}) nor a run folder with a rank stage"
    )


def runs_of(paths: list[Path]) -> list[tuple[Path, str, int]]:
    """``(run folder, variant, seed)`` of every run the paths name, each run once (a folder named twice, or
    by its experiment and by itself, is read once); two folders for one variant and seed are refused."""
    unique: dict[Path, tuple[Path, str, int]] = {}
    for entry in (entry for path in paths for entry in _named_runs(path)):
        unique.setdefault(entry[0].resolve(), entry)
    by_key: dict[tuple[str, int], Path] = {}
    for folder, variant, seed in unique.values():
        other = by_key.setdefault((variant, seed), folder)
        if other != folder:
            raise PipelineError(f"two runs of variant {variant}, seed {seed}: {other} and {folder}; a report "
                                "pairs one run per variant and seed (report each experiment on its own)")
    return list(unique.values())


def check_comparable(runs: list[RunData]) -> None:
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


# ------------------------------------------------------------------------------------------ one run
def _ranks(rows: list[RankedPrediction]) -> np.ndarray:
    from ulmrec_eval.evaluation import prediction_ranks

    return np.asarray(prediction_ranks(rows), dtype=np.int64)


def _test_predictions(layout: RunLayout) -> list[RankedPrediction]:
    """The LLM's test predictions, by user id, once the predictions and the candidates they were made from
    are checked to be as their stages wrote them."""
    predictions = layout.predictions
    for needed in (predictions, layout.candidates):
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
    return llm


def _retriever_order(layout: RunLayout, llm: list[RankedPrediction], n: int) -> list[RankedPrediction]:
    """The retriever's order of the first ``n`` candidates of each user the LLM ranked (in ``llm``'s
    order)."""
    predictions, candidates = layout.predictions, layout.candidates
    by_user = {p.user_id: p for p in read_jsonl_models(candidates, RankedPrediction) if p.split == "test"}
    strangers = [p.user_id for p in llm if p.user_id not in by_user]
    if strangers:
        raise PipelineError(f"{predictions}: {len(strangers)} predicted users are not among the retriever's "
                            f"test candidates in {candidates} (e.g. user {strangers[0]!r}): the predictions "
                            "were not made from these candidates; rerun the run")
    return [
        by_user[p.user_id].model_copy(
            update={
                "candidates": (by_user[p.user_id].candidates or [])[:n],
                "scores": (by_user[p.user_id].scores or [])[:n],
            }
        )
        for p in llm
    ]


def _stage_records(layout: RunLayout) -> dict[str, StageManifest]:
    """The run's stage records, refused unless every recorded stage is done."""
    stages: dict[str, StageManifest] = {}
    for stage in STAGES:
        record = StageManifest.load_or_none(layout.folder(stage)) if layout.folder(stage).exists() else None
        if record is not None:
            stages[stage] = record
    unfinished = [f"{name} is {record.effective_status()}" for name, record in stages.items()
                  if record.effective_status() != "done"]
    if unfinished:
        raise PipelineError(f"{layout.root}: {', '.join(unfinished)}: its predictions may not come from its "
                            "current stages; finish the run first (`ulmrec run` its config, or "
                            "`ulmrec experiment ablate` again)")
    return stages


def read_run(folder: Path, variant: str, seed: int) -> RunData:
    """The test predictions and records of one run (missing stages are a clear error)."""
    from ulmrec_eval.runtime.artifacts import sha256_file

    layout = RunLayout(folder)
    llm = _test_predictions(layout)
    n = llm[0].retrieved_n or len(llm[0].candidates or []) or default_ranked_n()
    order = _retriever_order(layout, llm, n)
    manifest_path = layout.train_manifest
    train = read_json_model(manifest_path, TrainManifest) if manifest_path.is_file() else None
    stages = _stage_records(layout)
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
        cold=_cold_flags(layout.predictions, [p.user_id for p in llm]),
        n_candidates=n,
        curve=[point.model_dump() for point in train.curve] if train else [],
        validation=[point.model_dump() for point in train.history] if train else [],
        steps=train.steps if train else 0,
        stages=stages,
        ranking_loss=train is None or is_ranking_loss(train),
        candidates_hash=sha256_file(layout.candidates),
        kind=run_kind(stages, variant),
        dataset_hash=stages["data"].output_hash if "data" in stages else None,
        fusion_weight=_fusion_weight(layout.predictions),
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


def is_ranking_loss(train_manifest: TrainManifest) -> bool:
    """Whether a tuned model's next-item loss is a cross-entropy over its candidates, as its loss declares
    (``Loss.ranking_answers``): letter answers under ``--loss letters``, or ``--loss choices``; not the token
    loss of titles (or of letters under ``tokens``, whose one letter token is still over the whole
    vocabulary)."""
    from ulmrec_align.losses.registry import get_loss

    return get_loss(train_manifest.train.loss).ranks_candidates(train_manifest.prompt.answer)


def _fusion_weight(predictions: Path) -> float | None:
    """The ``fusion_weight`` of the run's test rows (one W per run), None when they were not fused."""
    with predictions.open(encoding="utf-8") as handle:
        weights = {json.loads(line).get("fusion_weight") for line in handle if line.strip()}
    if len(weights) > 1:
        raise PipelineError(f"{predictions}: rows fused at different weights {sorted(map(str, weights))}")
    return next(iter(weights), None)


def _cold_flags(predictions: Path, users: list[Any]) -> np.ndarray:
    """Per user (in ``users`` order): held out of LLM training (the rows' ``cold_start``; absent = no)."""
    flags: dict[str, bool] = {}
    with predictions.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if row.get("split") in (None, "test"):
                    flags[str(row["user_id"])] = bool(row.get("cold_start"))
    return np.array([flags.get(str(u), False) for u in users], dtype=bool)


def index_summary(folder: Path) -> dict[str, Any]:
    """The quality of a run's user index (codes used, perplexity, collisions, text coherence) from the
    index stage's report; empty without one."""
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
