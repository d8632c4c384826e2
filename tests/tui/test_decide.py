"""``decide()`` as a table, without processes: skip, run (never run, config changed, input changed, output
cut, code changed, default changed), resume, reuse, wait; old manifests keep their decisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ulmrec_app.pipeline.config import load_config
from ulmrec_app.pipeline.decide import config_hash, decide, input_hashes
from ulmrec_app.pipeline.manifest import StageManifest, stamp_outputs
from ulmrec_app.pipeline.stages import StagePlan, build_plans

CONFIG = 'name = "t"\nstages = ["data", "retrieve"]\n[data.synthetic]\nusers = 40\n[retrieve]\nepochs = 2\n'


@pytest.fixture
def plans(tmp_path: Path) -> dict[str, StagePlan]:
    (tmp_path / "t.toml").write_text(CONFIG)
    return {p.name: p for p in build_plans(load_config(tmp_path / "t.toml"), tmp_path / "runs" / "t")}


def _done(plan: StagePlan, upstream: dict[str, StageManifest], **changes: object) -> StageManifest:
    """Write ``plan``'s outputs and a done manifest as the stage process would."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    for name in plan.outputs:
        (plan.folder / name).parent.mkdir(parents=True, exist_ok=True)
        (plan.folder / name).write_text(f"{plan.name} {name}\n")
    manifest = StageManifest(stage=plan.name, run="t", status="done", config_hash=config_hash(plan),
                             input_hashes=input_hashes(plan, upstream), output_hash=f"out-{plan.name}",
                             effective_options=plan.effective_options(), code_versions=plan.code_versions(),
                             output_files=stamp_outputs(plan.folder, plan.outputs), finished=1.0)
    manifest = manifest.model_copy(update=changes)
    manifest.save(plan.folder)
    return manifest


def _why(plan: StagePlan, upstream: dict[str, StageManifest], tmp_path: Path) -> tuple[str, str]:
    decision = decide(plan, upstream, tmp_path / "runs", forced=False)
    return decision.action, decision.reason


def test_effective_options_hold_defaults_and_the_producing_version(plans: dict[str, StagePlan]) -> None:
    options = plans["retrieve"].effective_options()["retrieve train"]
    assert options["epochs"] == 2                          # set by the config
    assert options["model.dropout"] == 0.2                 # a library default the command resolves, recorded
    assert not any(name in options for name in ("out", "data", "progress"))
    assert set(plans["retrieve"].code_versions()) == {"ulmrec-align"}


def test_decisions(plans: dict[str, StagePlan], tmp_path: Path) -> None:
    data, retrieve = plans["data"], plans["retrieve"]
    assert _why(data, {}, tmp_path) == ("run", "not run yet")
    done = _done(data, {})
    assert _why(data, {}, tmp_path) == ("skip", "unchanged")
    up = {"data": done}
    _done(retrieve, up)
    assert _why(retrieve, up, tmp_path) == ("skip", "unchanged")

    other = {"data": done.model_copy(update={"output_hash": "another"})}
    assert _why(retrieve, other, tmp_path) == ("run", "input changed: data")

    old_default = retrieve.effective_options()
    old_default["retrieve train"]["model.dropout"] = 0.4
    _done(retrieve, up, effective_options=old_default)
    action, reason = _why(retrieve, up, tmp_path)
    assert action == "run"
    assert reason == "default changed: retrieve train --model.dropout 0.4 → 0.2"

    _done(retrieve, up, code_versions={"ulmrec-align": "0.0.9"})
    now = retrieve.code_versions()["ulmrec-align"]
    assert _why(retrieve, up, tmp_path) == ("run", f"code changed: ulmrec-align 0.0.9 → {now}")

    # a manifest from before these records: versions from package_versions, no defaults to compare
    _done(retrieve, up, code_versions={}, effective_options={}, package_versions={"ulmrec-align": now})
    assert _why(retrieve, up, tmp_path) == ("skip", "unchanged")

    _done(retrieve, up)
    output = retrieve.folder / retrieve.outputs[0]
    output.write_text("cut\n")
    action, reason = _why(retrieve, up, tmp_path)
    assert (action, reason.split(":")[0]) == ("run", "output changed since it was written")


def test_wait_and_forced(plans: dict[str, StagePlan], tmp_path: Path) -> None:
    data = plans["data"]
    _done(data, {}, status="running", pid=os.getpid())
    assert _why(data, {}, tmp_path)[0] == "wait"
    _done(data, {})
    assert decide(data, {}, tmp_path / "runs", forced=True).action == "run"


def test_reuse_needs_the_same_code_and_defaults(plans: dict[str, StagePlan], tmp_path: Path) -> None:
    data = plans["data"]
    twin = StagePlan(name="data", folder=tmp_path / "runs" / "u" / "data", commands=data.commands,
                     depends=data.depends, outputs=data.outputs)
    _done(twin, {})
    decision = decide(data, {}, tmp_path / "runs", forced=False)
    assert (decision.action, decision.reuse_from) == ("reuse", twin.folder)
    _done(twin, {}, code_versions={"ulmrec-align": "0.0.9"})
    assert decide(data, {}, tmp_path / "runs", forced=False).action == "run"
