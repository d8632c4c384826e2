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


def _plans(tmp_path: Path, index: str) -> list:  # type: ignore[type-arg]
    config = tmp_path / "run.toml"
    config.write_text(f'name = "x"\n[data.synthetic]\nusers = 30\n[index]\n{index}\n[retrieve]\nepochs = 1\n'
                      '[align]\nmodel = "smollm2"\n[train]\nmodel = "smollm2"\nmax_steps = 1\n')
    return build_plans(load_config(config), tmp_path / "runs" / "x")


def test_collaborative_codes_build_the_index_from_the_retriever_after_it(tmp_path: Path) -> None:
    """[index] vectors = "retriever": `retrieve user-vectors` then `index build --vectors`, and the index
    stage moves after retrieve (the run executes plans in this order)."""
    plans = _plans(tmp_path, 'vectors = "retriever"\nvectors_kind = "item-mean"\nlevels = 3')
    names = [p.name for p in plans]
    assert names.index("retrieve") < names.index("index") < names.index("align")
    [index] = [p for p in plans if p.name == "index"]
    assert index.depends == ["data", "retrieve"]
    export, build = (c.argv() for c in index.commands)
    assert export[1:3] == ["retrieve", "user-vectors"]
    assert export[export.index("--kind") + 1] == "item-mean"
    retriever = next(p for p in plans if p.name == "retrieve").commands[0].argv()
    assert export[export.index("--retriever") + 1] == retriever[retriever.index("--out") + 1]
    assert build[1:3] == ["index", "build"]
    assert build[build.index("--vectors") + 1] == export[export.index("--out") + 1] + "/vectors.safetensors"
    assert "--users" not in build
    assert build[build.index("--levels") + 1] == "3"


def test_text_codes_keep_the_usual_order_and_unknown_vectors_are_refused(tmp_path: Path) -> None:
    import pytest

    from ulmrec_app.pipeline.errors import PipelineError

    names = [p.name for p in _plans(tmp_path, "levels = 3")]
    assert names[:4] == ["data", "users", "index", "retrieve"]
    with pytest.raises(PipelineError, match=r"index\.vectors"):
        _plans(tmp_path, 'vectors = "sasrec"')


def test_retriever_negatives_are_wired_to_the_runs_retriever(tmp_path: Path) -> None:
    """[align] negatives = "retriever": `align build` gets the run's retriever folder (`--retriever`), the one
    whose candidates it reads; random negatives need none."""
    config = tmp_path / "run.toml"
    for negatives, wired in (("retriever", True), ("random", False)):
        config.write_text(f'name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n[align]\n'
                          f'model = "smollm2"\nnegatives = "{negatives}"\n[train]\nmodel = "smollm2"\n')
        plans = build_plans(load_config(config), tmp_path / "runs" / "x")
        [build] = next(p for p in plans if p.name == "align").commands
        argv = build.argv()
        assert ("--retriever" in argv) == wired
        if wired:
            candidates = argv[argv.index("--candidates") + 1]
            assert candidates == argv[argv.index("--retriever") + 1] + "/candidates.jsonl"
