"""``ulmrec experiment ablate CONFIG``: one run per (variant, seed), sharing every unchanged stage.

Each run is a normal run folder (``runs/<name>-<variant>-s<seed>/``, shown by the TUI) whose config is written
to ``runs/<name>-experiment/configs/`` as ``extends = CONFIG`` plus the variant's options; the experiment's
record is ``runs/<name>-experiment/experiment.json`` (:class:`ExperimentManifest`), which
``ulmrec experiment report`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ulmrec_app.experiment.variants import overrides
from ulmrec_app.pipeline.config import STAGES, load_config
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.stages import build_plans
from ulmrec_eval.runtime.artifacts import folder_lock
from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.io import atomic_write_text, read_json_model

EXPERIMENT_FILE = "experiment.json"


class ExperimentRun(BaseModel):
    variant: str
    seed: int
    run: str = Field(description="Run folder name under the runs folder.")
    config: str = Field(description="The variant's config file.")


class ExperimentManifest(BaseModel):
    """What ``ulmrec experiment ablate`` ran: the base config, the variants and seeds, one run each."""

    schema_version: int = 1
    name: str
    base_config: str
    runs_dir: str
    variants: list[str]
    seeds: list[int]
    runs: list[ExperimentRun]

    def save(self, folder: Path) -> None:
        atomic_write_text(folder / EXPERIMENT_FILE, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> ExperimentManifest:
        return read_json_model(folder / EXPERIMENT_FILE, cls)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def variant_config(base: Path, name: str, tables: dict[str, dict[str, Any]]) -> str:
    """The TOML text of a config that extends ``base`` (absolute) with ``tables``."""
    lines = [
        f"extends = {json.dumps(str(base.resolve()))}",
        f"name = {json.dumps(name)}",
        f"description = {json.dumps('ablation variant ' + name)}",
    ]
    for table, options in tables.items():
        lines.append(f"\n[{table}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def plan_experiment(
    config: Path, runs_dir: Path, variants: list[str], seeds: list[int]
) -> ExperimentManifest:
    """Write the variant configs and the experiment record (joined with an earlier one of the same base
    config); run nothing. Returns the runs of this call. A variant or seed given twice is planned once (a
    run counted twice would count each of its users twice in the report's statistics)."""
    variants, seeds = list(dict.fromkeys(variants)), list(dict.fromkeys(seeds))
    if not variants or not seeds:
        raise PipelineError("an experiment needs at least one variant and one seed")
    negative = [s for s in seeds if s < 0]
    if negative:   # numpy and torch take seeds >= 0 only: each run would fail in its first seeded stage
        raise PipelineError(f"seeds are integers >= 0, got {negative[0]}")
    base = load_config(config)
    tables = base.model_dump(include=set[str](STAGES))   # a table per stage
    folder = runs_dir / f"{base.name}-experiment"
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in seeds:
        for variant in variants:
            name = f"{base.name}-{variant}-s{seed}"
            path = folder / "configs" / f"{name}.toml"
            atomic_write_text(path, variant_config(config, name, overrides(variant, seed, tables)))
            # plan its stages now (options, values, inputs): what its run would refuse, this call refuses
            build_plans(load_config(path), runs_dir / name)
            runs.append(ExperimentRun(variant=variant, seed=seed, run=name, config=str(path.resolve())))
    manifest = ExperimentManifest(
        name=base.name,
        base_config=str(config.resolve()),
        runs_dir=str(runs_dir.resolve()),
        variants=variants,
        seeds=seeds,
        runs=runs,
    )
    # read, join and write the record in turn with any other `ablate` of this experiment (else one of two
    # concurrent calls would write the record without the other's runs)
    with folder_lock(folder / EXPERIMENT_FILE, wait=True):
        _with_earlier_runs(manifest, folder).save(folder)
    return manifest


def _with_earlier_runs(manifest: ExperimentManifest, folder: Path) -> ExperimentManifest:
    """The record to keep: this call's runs plus those an earlier ``ablate`` of the same base config and
    runs folder recorded (a variant or seed added later joins the experiment instead of replacing it). An
    unreadable record, or one of another config of the same name, is refused rather than replaced."""
    path = folder / EXPERIMENT_FILE
    if not path.is_file():
        return manifest
    try:
        earlier = ExperimentManifest.load(folder)
    except (OSError, ValueError, UlmrecError) as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise PipelineError(f"{path}: unreadable experiment record ({reason}); it lists the runs "
                            "`experiment report` reads: fix it, or move it aside to start a new "
                            "record") from None
    if (earlier.base_config, earlier.runs_dir) != (manifest.base_config, manifest.runs_dir):
        raise PipelineError(f"{path}: the record of another experiment named {manifest.name!r} (config "
                            f"{earlier.base_config}, runs {earlier.runs_dir}); give this config another "
                            "name, or move that experiment folder aside")
    names = {r.run for r in manifest.runs}
    kept = {r.run: r for r in earlier.runs if r.run not in names}   # one record per run, even in old files
    runs = [*kept.values(), *manifest.runs]
    return manifest.model_copy(update={
        "runs": runs,
        "variants": list(dict.fromkeys([*earlier.variants, *manifest.variants])),
        "seeds": sorted({*earlier.seeds, *manifest.seeds}),
    })


def run_experiment(manifest: ExperimentManifest, *, line: Callable[[str], None] = print) -> None:
    """Run every variant's pipeline in turn (unchanged stages are skipped or reused)."""
    from ulmrec_app.pipeline.runner import Runner

    runs_dir = Path(manifest.runs_dir)
    for i, run in enumerate(manifest.runs, 1):
        line(f"== {i}/{len(manifest.runs)}: {run.run} (variant {run.variant}, seed {run.seed})")
        Runner(load_config(Path(run.config)), runs_dir).run()
