"""Key figures of a finished stage for its manifest (and the TUI's run list): a few numbers per stage.

Read from the stage's own outputs with their packages' models where they are light (``ulmrec_eval``), else
as plain JSON; a figure that cannot be read is left out (figures are for display, never a reason to fail).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ulmrec_app.pipeline.layout import (
    DATASET,
    INDEX,
    METRICS,
    PREDICTIONS,
    RETRIEVER,
    RETRIEVER_EVAL,
    RETRIEVER_METRICS,
    USER_TEXTS,
)
from ulmrec_eval.runtime.events import read_events

Figures = dict[str, float | int | str]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def eval_figures(path: Path, prefix: str = "") -> Figures:
    """``subset/ndcg@10``, ``overall/recall@10`` … of an ``ulmrec eval metrics --out`` file."""
    from ulmrec_eval.runtime.io import read_json_model
    from ulmrec_eval.schemas import EvalResult

    result = read_json_model(path, EvalResult)
    out: Figures = {}
    for report in result.reports:
        for key in ("ndcg@10", "recall@10"):
            if key in report.metrics:
                out[f"{prefix}{report.scope}/{key}"] = round(report.metrics[key], 4)
    return out


def _data(folder: Path) -> Figures:
    from ulmrec_align.data.prepared import MANIFEST

    counts = _json(folder / DATASET / MANIFEST).get("counts", {})
    return {k: int(counts[k]) for k in ("users", "items", "interactions") if k in counts}


def _index(folder: Path) -> Figures:
    from ulmrec_index.artifact import REPORT_FILE

    report = _json(folder / INDEX / REPORT_FILE)
    ours = report.get("ours", {})
    out: Figures = {"users": int(report.get("n_users", 0))}
    for key in ("collisions", "collision_rate", "unique_codes"):
        if isinstance(ours.get(key), (int, float)):
            out[key] = ours[key]
    return out


def _retrieve(folder: Path) -> Figures:
    metrics = _json(folder / RETRIEVER / RETRIEVER_METRICS)
    test = metrics.get("test", {})
    out: Figures = {}
    for key in ("ndcg@10", "recall@10"):
        if key in test.get("metrics", {}):
            out[f"test/{key}"] = round(float(test["metrics"][key]), 4)
    if "target_in_candidates" in test:
        out[f"test/in_top{metrics.get('pool_size', '')}"] = round(float(test["target_in_candidates"]), 4)
    return out


def _eval(folder: Path) -> Figures:
    out: Figures = {}
    if (folder / METRICS).is_file():
        out.update(eval_figures(folder / METRICS))
    if (folder / RETRIEVER_EVAL).is_file():
        out.update(eval_figures(folder / RETRIEVER_EVAL, prefix="retriever "))
    return out


def _lines(name: str) -> Any:
    return lambda folder: {"records": _count_lines(folder / name)}


#: Key figures of a stage, read from its folder: optional (a stage without one still shows its events' last
#: loss and metrics). Keyed by name rather than declared with the stage, as ``execute`` (the stage process)
#: reads figures without loading the stage graph.
_EXTRACTORS: dict[str, Any] = {"data": _data, "users": _lines(USER_TEXTS), "index": _index,
                               "retrieve": _retrieve, "rank": _lines(PREDICTIONS), "eval": _eval}


def stage_figures(stage: str, folder: Path) -> Figures:
    """Figures of ``stage`` from its folder; the last loss and metrics of its events are added."""
    out: Figures = {}
    extractor = _EXTRACTORS.get(stage)
    if extractor is not None:
        with contextlib.suppress(Exception):
            out.update(extractor(folder))
    with contextlib.suppress(Exception):
        events = read_events(folder / "events.jsonl")
        losses = [e.loss for e in events if e.loss is not None]
        if losses:
            out["loss"] = round(losses[-1], 4)
        for event in events:
            for key, value in (event.metric or {}).items():
                out[key] = round(value, 4)
    return out
