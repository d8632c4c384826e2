"""One run layout (issue 28, item 1): the paths the stages write are the paths every reader asks
:class:`RunLayout` for, its file names are the ones the packages write, and the defaults readers fall back on
are the packages' own."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulmrec_app.pipeline import layout
from ulmrec_app.pipeline.config import load_config
from ulmrec_app.pipeline.layout import RunLayout, default_n_candidates, default_pool_size, default_ranked_n
from ulmrec_app.pipeline.stages import StagePlan, build_plans

CONFIG = ('name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n{retrieve}\n[align]\n{align}\n'
          '[train]\nmodel = "smollm2"\nmax_steps = 1\n[rank]\nlimit = 5\n[eval]\nk = "1,5"\n')


def _plans(tmp_path: Path, *, retrieve: str = "", align: str = 'model = "smollm2"') -> dict[str, StagePlan]:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(retrieve=retrieve, align=align))
    return {p.name: p for p in build_plans(load_config(config), tmp_path / "runs" / "x")}


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_stages_write_where_the_layout_says(tmp_path: Path) -> None:
    plans = _plans(tmp_path)
    run = RunLayout(tmp_path / "runs" / "x")
    main = {"data": run.dataset, "users": run.user_texts, "index": run.index, "retrieve": run.retriever,
            "align": run.samples, "train": run.model, "rank": run.predictions, "eval": run.metrics}
    for name, plan in plans.items():
        assert plan.folder == run.folder(name)
    for name, path in main.items():
        assert plans[name].folder / plans[name].outputs[0] == path, name
    argv = {name: [c.argv() for c in plan.commands] for name, plan in plans.items()}
    assert _option(argv["align"][0], "--candidates") == str(run.candidates)
    assert _option(argv["rank"][0], "--candidates") == str(run.candidates)
    assert _option(argv["rank"][0], "--model") == str(run.model)
    assert argv["eval"][1][3] == str(run.candidates)                 # `eval metrics PREDICTIONS`
    assert _option(argv["eval"][1], "--out") == str(run.retriever_eval)
    assert _option(argv["data"][0], "--out") == str(run.raw)


def test_file_names_are_the_ones_the_packages_write() -> None:
    from ulmrec_align.models.train_manifest import TRAIN_MANIFEST
    from ulmrec_align.retrieval.saved import CANDIDATES_FILE, METRICS_FILE

    assert (layout.CANDIDATES, layout.RETRIEVER_METRICS, layout.TRAIN_MANIFEST) == (
        CANDIDATES_FILE, METRICS_FILE, TRAIN_MANIFEST)


def test_pool_defaults_are_the_packages_own() -> None:
    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.retrieval.config import CandidateConfig

    assert default_pool_size() == CandidateConfig().pool_size
    assert default_n_candidates() == PromptConfig().n_candidates
    assert default_ranked_n() == min(CandidateConfig().pool_size, PromptConfig().n_candidates)


@pytest.mark.parametrize(("retrieve", "align", "expected"), [
    ("", 'model = "smollm2"', default_ranked_n()),
    ("pool_size = 8", 'model = "smollm2"', 8),
    ("pool-size = 8", 'model = "smollm2"', 8),          # either spelling of the key, as for the command
    ("", 'model = "smollm2"\nn-candidates = 6', 6),
    ("pool-size = 4", 'model = "smollm2"\nn_candidates = 6', 4),
])
def test_eval_subset_follows_either_spelling_of_the_pool_keys(tmp_path: Path, retrieve: str, align: str,
                                                                expected: int) -> None:
    plans = _plans(tmp_path, retrieve=retrieve, align=align)
    for command in plans["eval"].commands:
        assert _option(command.argv(), "--retrieved-n") == str(expected)
