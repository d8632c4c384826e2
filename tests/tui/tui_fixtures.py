"""A small, deterministic runs folder for the TUI tests and snapshots.

The manifests, logs and events are written with fixed times and figures (so an 80×24 snapshot is stable);
the metric files are computed by ulmrec-eval from fixed predictions and the index by its own pydantic
model, so every screen reads exactly the files and formats the pipeline writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from ulmrec_app.pipeline.config import STAGES
from ulmrec_app.pipeline.manifest import StageManifest
from ulmrec_app.pipeline.run_info import RunInfo
from ulmrec_eval.evaluation import evaluate
from ulmrec_eval.runtime.events import StageEvent

T0 = 1_796_000_000.0


def fixture_predictions(n_users: int, shift: int) -> list[dict[str, object]]:
    """Candidates 0..19 per user; the target's position cycles (and ``shift`` moves it)."""
    rows = []
    for u in range(n_users):
        target = 100 + u
        pos = (u * 7 + shift) % 26  # positions 20..25: not retrieved
        candidates = [1000 + u * 30 + j for j in range(20)]
        if pos < 20:
            candidates[pos] = target
        scores = [float(20 - j) for j in range(20)]
        rows.append({"user_id": f"U{u:03d}", "target": target, "candidates": candidates, "scores": scores,
                     "split": "test"})
    return rows


def write_eval_result(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    result = evaluate(rows, retrieved_n=20)
    (folder / name).write_text(result.model_dump_json(indent=2) + "\n")


def _manifest(run: str, stage: str, status: str, start: float, seconds: float,
              **extra: object) -> StageManifest:
    return StageManifest(stage=stage, run=run, status=status, started=T0 + start,  # type: ignore[arg-type]
                         finished=T0 + start + seconds, config_hash="c" * 64, host="testhost", device="cpu",
                         **extra)  # type: ignore[arg-type]


def _index(folder: Path, n_users: int) -> None:
    from ulmrec_index.artifact import IndexArtifact

    codes = {f"U{u:03d}": [u % 4, (u // 4) % 4, u // 16] for u in range(n_users)}
    artifact = IndexArtifact.model_validate({
        "package_version": "0.1.0", "quantizer_kind": "rqvae", "quantizer_config": {"kind": "rqvae"},
        "levels": 3, "codebook_sizes": [4, 4, 4], "token_format": ["<a_{}>", "<b_{}>", "<c_{}>"],
        "encoder": {"name": "minilm", "identity": "minilm-0", "dim": 384, "max_seq_length": 256},
        "fusion": {"mode": "attention", "effective": "attention", "id_dim": 64, "attn_dim": 64,
                   "id_weight": 0.25, "max_texts": 128, "joint_epochs": 5},
        "seed": 0, "codes": codes})
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(artifact.model_dump_json(indent=2))
    with (folder / "texts.jsonl").open("w") as handle:
        for user in codes:
            handle.write(json.dumps({"user_id": user, "texts": [f"review {i} by {user}" for i in range(2)]})
                         + "\n")


def build_runs(root: Path, n_users: int = 40) -> Path:
    """``root/runs`` with run ``demo`` (all stages done) and ``demo-noindex`` (rank failed, train stopped)."""
    runs = root / "runs"
    demo = runs / "demo"
    for i, stage in enumerate(STAGES):
        (demo / stage).mkdir(parents=True)
        figures: dict[str, float | int | str] = {}
        if stage == "data":
            figures = {"users": n_users, "items": 300, "interactions": 2400}
        if stage == "train":
            figures = {"loss": 0.8123}
        _manifest("demo", stage, "done", i * 60.0, 30.0 + i, figures=figures, output_hash=f"{i}" * 64) \
            .save(demo / stage)
        (demo / stage / "log.txt").write_text(f"$ ulmrec {stage} …\n{stage}: line 1\n{stage}: finished\n")
    with (demo / "train" / "events.jsonl").open("w") as handle:
        for step in range(1, 41):
            event = StageEvent(time=T0 + step, stage="train", step=step, total=40, loss=2.5 / (1 + step / 8),
                               metric={"train/lr": 1e-3 * min(1.0, step / 4) * (1 - step / 40)})
            handle.write(event.model_dump_json(exclude_none=True) + "\n")
            if step % 10 == 0:
                handle.write(StageEvent(time=T0 + step, stage="train", step=step,
                                        metric={"valid/ndcg@10": 0.2 + step / 400}).model_dump_json(
                                            exclude_none=True) + "\n")
    (demo / "data" / "dataset").mkdir()
    (demo / "data" / "dataset" / "manifest.json").write_text(json.dumps({"name": "amazon-beauty"}))
    write_eval_result(demo / "eval", "metrics.json", fixture_predictions(n_users, 0))
    write_eval_result(demo / "eval", "retriever.json", fixture_predictions(n_users, 3))
    _index(demo / "index" / "index", n_users)
    RunInfo(name="demo", config="/nonexistent/demo.toml", description="fixture run",
            stages=list(STAGES)).save(demo)

    base = runs / "demo-noindex"
    base_stages = ["data", "retrieve", "align", "train", "rank", "eval"]
    for stage in base_stages:
        (base / stage).mkdir(parents=True)
    _manifest("demo-noindex", "data", "done", 0.0, 30.0).save(base / "data")
    _manifest("demo-noindex", "retrieve", "done", 60.0, 33.0).save(base / "retrieve")
    _manifest("demo-noindex", "align", "done", 120.0, 12.0).save(base / "align")
    _manifest("demo-noindex", "train", "stopped", 140.0, 50.0).save(base / "train")
    _manifest("demo-noindex", "rank", "failed", 200.0, 5.0,
              error="`ulmrec align rank` exited with 1: out of memory").save(base / "rank")
    (base / "rank" / "log.txt").write_text("$ ulmrec align rank …\nTraceback (most recent call last):\n"
                                           "RuntimeError: out of memory\n")
    RunInfo(name="demo-noindex", config="/nonexistent/demo-noindex.toml", stages=base_stages).save(base)
    return runs
