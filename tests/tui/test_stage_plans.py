"""The eval stage labels the LLM's subset by the LLM's own pool (issue 15: with align.n_candidates 5 and a
retriever pool of 20, eval was told --retrieved-n 20 and called the subset "target in the top-20")."""

from __future__ import annotations

from pathlib import Path

from ulmrec_app.pipeline.config import load_config
from ulmrec_app.pipeline.stages import build_plans


def _eval_argv(tmp_path: Path, align: str) -> list[list[str]]:
    config = tmp_path / "run.toml"
    config.write_text(f'name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n[align]\n{align}\n'
                      '[train]\nmodel = "smollm2"\nmax_steps = 1\n[rank]\nlimit = 5\n[eval]\nk = "1,5"\n')
    plans = build_plans(load_config(config), tmp_path / "runs" / "x")
    [plan] = [p for p in plans if p.name == "eval"]
    return [c.argv() for c in plan.commands]


def test_eval_subset_is_the_llm_pool(tmp_path: Path) -> None:
    for argv in _eval_argv(tmp_path, "n_candidates = 5"):
        assert argv[argv.index("--retrieved-n") + 1] == "5"


def test_eval_subset_defaults_to_the_retriever_pool(tmp_path: Path) -> None:
    for argv in _eval_argv(tmp_path, 'model = "smollm2"'):
        assert argv[argv.index("--retrieved-n") + 1] == "20"
