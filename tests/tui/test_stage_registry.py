"""A stage is declared once (issue 28, item 4): one :class:`Stage` in ``STAGE_LIST``. The config side (its
name in ``StageName``, its options table in ``RunConfig``) must be written where a config is read, before the
stages are; these tests fail until the three agree."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from ulmrec_app.pipeline import figures
from ulmrec_app.pipeline.config import STAGES, RunConfig, StageName, load_config
from ulmrec_app.pipeline.stages import STAGE, STAGE_LIST, active_stages, build_plans


def test_the_config_names_the_declared_stages_in_their_order() -> None:
    assert tuple(stage.name for stage in STAGE_LIST) == STAGES == get_args(StageName)
    assert RunConfig(name="x").stages == list(STAGES)
    assert list(STAGE) == list(STAGES)


def test_every_stage_has_its_options_table() -> None:
    for name in STAGES:
        assert name in RunConfig.model_fields, f"RunConfig has no [{name}] table"
        assert isinstance(RunConfig(name="x").settings(name), dict)


def test_figures_are_of_declared_stages() -> None:
    assert set(figures._EXTRACTORS) <= set(STAGES)


def test_resumable_stages_resume_with_an_option_of_their_command(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n[align]\n'
                      'model = "smollm2"\n[train]\nmodel = "smollm2"\nmax_steps = 1\n')
    plans = {p.name: p for p in build_plans(load_config(config), tmp_path / "runs" / "x")}
    resumable = [stage for stage in STAGE_LIST if stage.resume]
    assert {stage.name for stage in resumable} == {"retrieve", "train"}
    for stage in resumable:
        plan = plans[stage.name]
        assert stage.resume is not None
        assert plan.resume_option == stage.resume[0]
        for command in plan.commands:
            assert command.spec is not None
            assert plan.resume_option in command.spec.options


def test_the_no_index_baseline_leaves_out_the_index_only_stages() -> None:
    baseline = RunConfig(name="x", align={"index": "none"})
    assert [s.name for s in STAGE_LIST if s.index_only] == ["users", "index"]
    assert active_stages(baseline) == [s for s in STAGES if s not in ("users", "index")]
    assert active_stages(RunConfig(name="x")) == list(STAGES)
