"""The eval stage labels the LLM's subset by the LLM's own pool (issue 15: with align.n_candidates 5 and a
retriever pool of 20, eval was told --retrieved-n 20 and called the subset "target in the top-20")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(("answer", "wired"), [("letter", False), ("title", False), ("relevance", True)])
def test_without_negatives_the_answer_kind_decides_whether_the_retriever_is_wired(
        tmp_path: Path, answer: str, wired: bool) -> None:
    """No [align] negatives: `align build` takes its answer kind's default (the answer registry's
    ``Answer.negatives``), so the plan wires the retriever exactly when that default is "retriever"."""
    from ulmrec_align.prompts.answers.registry import get_answer

    assert (get_answer(answer).negatives == "retriever") == wired
    config = tmp_path / "run.toml"
    config.write_text(f'name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n[align]\n'
                      f'model = "smollm2"\nanswer = "{answer}"\n[train]\nmodel = "smollm2"\n',
                      encoding="utf-8")
    plans = build_plans(load_config(config), tmp_path / "runs" / "x")
    [build] = next(p for p in plans if p.name == "align").commands
    assert ("--retriever" in build.argv()) == wired


BASE = ('name = "x"\n[data.synthetic]\nusers = 30\n[retrieve]\nepochs = 1\n[align]\nmodel = "smollm2"\n'
        '[train]\nmodel = "smollm2"\nmax_steps = 1\n')


@pytest.mark.parametrize(("extra", "refused"), [
    ("[index]\nlevels = 0", r"index\.levels: 0 is out of range; option --levels of `ulmrec index build` "
                            r"takes values >= 1"),
    ("[rank]\nlimit = 0", r"rank\.limit: 0 is out of range; option --limit .* >= 1"),
    ("[align]\nn_candidates = 27", r"align\.n_candidates: 27 is out of range; .* >= 2 and <= 26"),
    ("[index]\ncold_share = nan", r"index\.cold_share: nan is not a finite number"),
    ("[align]\ncold_share = inf", r"align\.cold_share: inf is not a finite number"),
    ('[align]\nanswer = "titel"', r"align\.answer: 'titel': Input should be 'letter', 'title'"),
    ('[rank]\nanswer = "titel"', r"rank\.answer: 'titel': Input should be 'letter'"),
    ('[align]\nprefixes = "first"', r"align\.prefixes: 'first': Input should be 'all' or 'last'"),
    ('[train]\nloss = "letter"', r"train\.loss: 'letter': Input should be 'tokens'"),
    ("[train]\nlr = 0.0", r"train\.lr: 0\.0: Input should be greater than 0"),
    ("[train]\nepochs = 0", r"train\.epochs: 0\.0: Input should be greater than 0 \(option --epochs"),
    ("[train]\nmax_minutes = 0", r"train\.max_minutes: 0\.0: Input should be greater than 0"),
    ("[train]\nlora_alpha = 0", r"train\.lora_alpha: 0\.0: Input should be greater than 0"),
    ("[train]\nlora_dropout = 1", r"train\.lora_dropout: 1\.0: Input should be less than 1 \(option "
                                  r"--lora-dropout"),
    ("[align]\ncold_share = 1.0", r"align\.cold_share: 1\.0: Input should be less than 1"),
    ('[align]\nnegatives = "retriever"\nnegative_draws = 2', r"align\.negative_draws: --negative-draws 2 "
                                                         r"redraws random negatives"),
    ('[align]\nanswer = "relevance"\nnegative_draws = 3', r"align\.negative_draws: .* \(the default with "
                                                       r"--answer relevance"),
    ("[index]\nlevels = true", r"index\.levels: true is not a number"),
    ("[align]\nn_candidates = false", r"align\.n_candidates: false is not a number"),
    ('[align]\nuser_text = "yes"', r'align\.user_text: "yes" is not true or false \(switch --user-text'),
    ('[index]\nvectors = "retriever"\ncold_share = 0.2', r"index\.cold_share: holds users out of a fit of "
                                                         r"review texts"),
    ('[align]\nindex = "none"\nindex_permute = 3', r"align\.index_permute: replaces the users' codes, but "
                                                   r"this run has no user index"),
    ('[align]\nindex = "none"\n[rank]\nindex_random = 3', r"rank\.index_random: replaces the users' codes"),
    ("[align]\nindex_permute = 3\nindex_random = 4", r"align: index_permute and index_random are two"),
    ('[align]\ntask_weight = ["rating=1e9"]', r"align\.task_weight: --task-weight rating must be a number "
                                             r"from 0 to 100 "),
    ("[rank]\nfuse_retriever = 1.7e308", r"rank\.fuse_retriever: --fuse-retriever must be a number from 0 to "
                                        r"1e\+06"),
    ('[rank]\nfuse_retriever = "1e7"', r"rank\.fuse_retriever: --fuse-retriever must be a number"),
    ("[align]\ncold_share = 0.3", r"align\.cold_share: the index holds out no users as cold-start \(share 0, "
                                 r"seed 0\) but 0\.3 of them"),
    ("[index]\ncold_share = 0.3\n[align]\ncold_share = 0.3\ncold_seed = 1",
     r"align\.cold_share: the index holds out 0\.3 of the users .* --cold-seed 1"),
    ("[align]\nindex_permute = 1000", r"rank: the tuned model: it was made with --index-permute 1000 "
                                     r"\(asked: none\)"),
    ("[align]\nindex_permute = 1000\n[rank]\nindex_permute = 5", r"--index-permute 1000 \(asked: 5\)"),
    ("[rank]\nindex_random = 5", r"it was made with --index-random none \(asked: 5\)"),
])
def test_a_plan_refuses_every_value_its_stage_would_refuse(tmp_path: Path, extra: str, refused: str) -> None:
    """`ulmrec run --dry-run` (and `experiment ablate`, which plans each variant) refuse bad values, not only
    bad types: each of these failed minutes later in its stage (issue 26, item 9)."""
    from ulmrec_app.pipeline.errors import PipelineError

    config = tmp_path / "run.toml"
    config.write_text(_merged(extra), encoding="utf-8")
    with pytest.raises(PipelineError, match=refused):
        build_plans(load_config(config), tmp_path / "runs" / "x")


def test_every_open_bound_of_align_build_and_train_is_checked_when_planned() -> None:
    """An option whose config field has an open bound (``gt``/``lt``, which Typer's min/max cannot declare)
    is in MODEL_BOUNDS, so the plan refuses the bound itself (``epochs = 0``) before the stage starts; every
    entry of MODEL_BOUNDS names a field that exists."""
    from ulmrec_align.prompts.config import PromptConfig
    from ulmrec_align.tasks.schema import AlignConfig
    from ulmrec_align.tuning.config import LoraSettings, TrainSettings
    from ulmrec_app.pipeline.commands import MODEL_BOUNDS, _model_field, command_spec

    models = {("align", "build"): [(PromptConfig, ""), (AlignConfig, "")],
              ("align", "train"): [(LoraSettings, "lora_"), (TrainSettings, "")]}

    def is_open(metadata: list[Any]) -> bool:
        return any(getattr(m, "gt", None) is not None or getattr(m, "lt", None) is not None for m in metadata)

    open_bounded: set[tuple[tuple[str, ...], str]] = set()
    for path, fields in models.items():
        spec = command_spec(path)
        assert spec is not None
        for name in spec.options:
            field = next((info for model, prefix in fields if name.startswith(prefix)
                          and (info := model.model_fields.get(name.removeprefix(prefix))) is not None), None)
            if field is not None and is_open(field.metadata):
                open_bounded.add((path, name))
    train = ("align", "train")
    assert {(train, "epochs"), (train, "lora_dropout"), (train, "max_minutes")} <= open_bounded
    assert [(p, n) for p, n in sorted(open_bounded) if n not in MODEL_BOUNDS.get(p, {})] == []
    assert [ref for refs in MODEL_BOUNDS.values() for ref in refs.values() if _model_field(ref) is None] == []


def _merged(extra: str) -> str:
    """BASE with the tables of ``extra`` merged in (TOML refuses a table given twice)."""
    tables: dict[str, list[str]] = {}
    current = ""
    for line in (BASE + extra).splitlines():
        if line.startswith("["):
            current = line
            tables.setdefault(current, [])
        else:
            tables.setdefault(current, []).append(line)
    return "\n".join(f"{head}\n" * bool(head) + "\n".join(body) for head, body in tables.items()) + "\n"


def test_a_number_for_a_text_option_is_its_text(tmp_path: Path) -> None:
    """TOML `fuse_retriever = 0.5` is what `--fuse-retriever 0.5` is (it was refused as "not a string")."""
    config = tmp_path / "run.toml"
    config.write_text(_merged("[rank]\nfuse_retriever = 0.5"), encoding="utf-8")
    plans = build_plans(load_config(config), tmp_path / "runs" / "x")
    [rank] = next(p for p in plans if p.name == "rank").commands
    argv = rank.argv()
    assert argv[argv.index("--fuse-retriever") + 1] == "0.5"


def test_ablate_plans_each_variant_and_refuses_what_its_run_would(tmp_path: Path) -> None:
    """Variants that change the index on a base without one, and `collab` on a base with [index] cold_share,
    are refused when planned (`ablate --dry-run`), not minutes into the run."""
    from ulmrec_app.experiment.ablate import plan_experiment
    from ulmrec_app.pipeline.errors import PipelineError

    demo = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    plain = tmp_path / "plain.toml"
    plain.write_text(f'extends = "{demo}"\nname = "plain"\n[align]\nindex = "none"\n', encoding="utf-8")
    for variant in ("permuted", "random", "noindex", "collab"):
        with pytest.raises(PipelineError, match=rf"variant {variant}: changes or removes the user index, but "
                                                r"the base config has none"):
            plan_experiment(plain, tmp_path / "runs", ["full", variant], [0])
    held = tmp_path / "held.toml"
    held.write_text(f'extends = "{demo}"\nname = "held"\n[index]\ncold_share = 0.2\n'
                    '[align]\ncold_share = 0.2\n', encoding="utf-8")
    with pytest.raises(PipelineError, match=r"held-collab-s0\.toml: index\.cold_share: holds users out"):
        plan_experiment(held, tmp_path / "runs", ["full", "collab"], [0])
    assert not (tmp_path / "runs" / "held-experiment" / "experiment.json").exists()


def test_values_within_the_limits_plan(tmp_path: Path) -> None:
    """The limits refuse only what they should: a weight of 5 (one string for a repeatable option), fusion
    weight auto or 2, the same cold-start share in [index] and [align]."""
    config = tmp_path / "run.toml"
    config.write_text(_merged('[align]\ntask_weight = "rating=5"\ncold_share = 0.2\n'
                              '[index]\ncold_share = 0.2\n[rank]\nfuse_retriever = "auto"'), encoding="utf-8")
    plans = {p.name: p for p in build_plans(load_config(config), tmp_path / "runs" / "x")}
    assert plans["align"].commands[0].settings["task_weight"] == ["rating=5"]
    config.write_text(_merged("[rank]\nfuse_retriever = 2"), encoding="utf-8")
    build_plans(load_config(config), tmp_path / "runs" / "x")


def test_stage_with_from_reruns_from_that_stage(tmp_path: Path) -> None:
    """`ulmrec run --stage rank --from train` reruns train and what follows it up to rank (--from was
    ignored); a --from outside what --stage runs is refused."""
    from ulmrec_app.pipeline.errors import PipelineError
    from ulmrec_app.pipeline.runner import Runner

    config = tmp_path / "run.toml"
    config.write_text(_merged(""), encoding="utf-8")
    runner = Runner(load_config(config), tmp_path / "runs")
    selected, forced = runner._selection("rank", "train", False)
    assert selected == ["data", "users", "index", "retrieve", "align", "train", "rank"]
    assert forced == {"train", "rank"}
    assert runner._selection("rank", None, False)[1] == set()
    assert runner._selection("rank", "data", True)[1] == set(selected)
    with pytest.raises(PipelineError, match=r"--from eval: not among the stages --stage rank runs"):
        runner._selection("rank", "eval", False)


def test_a_relative_path_resolves_against_the_config_that_wrote_it(tmp_path: Path) -> None:
    """A base config's relative paths stay its own when another config extends it: a child in another
    folder, and `experiment ablate`'s variant configs (written under runs/<name>-experiment/configs/), which
    resolved `raw` there and failed at run time (issue 26, item 7)."""
    from ulmrec_app.experiment.ablate import plan_experiment

    base_dir = tmp_path / "relbase"
    (base_dir / "raw").mkdir(parents=True)
    (tmp_path / "child" / "raw2").mkdir(parents=True)
    base = base_dir / "rel.toml"
    base.write_text('name = "rel"\nstages = ["data"]\n[data.prepare]\nsource = "amazon"\npath = "raw"\n',
                    encoding="utf-8")

    def prepare_path(config: Path, run: str) -> str:
        [plan] = build_plans(load_config(config), tmp_path / "runs" / run)
        argv = plan.commands[0].argv()
        return argv[argv.index("--path") + 1]

    child = tmp_path / "child" / "child.toml"
    child.write_text('extends = "../relbase/rel.toml"\nname = "child"\n[data.prepare]\nk_core = 3\n',
                     encoding="utf-8")
    assert prepare_path(child, "child") == str(base_dir / "raw")
    child.write_text('extends = "../relbase/rel.toml"\nname = "child"\n[data.prepare]\npath = "raw2"\n',
                     encoding="utf-8")
    assert prepare_path(child, "child") == str(tmp_path / "child" / "raw2")     # its own key: its own folder
    manifest = plan_experiment(base, tmp_path / "runs", ["full"], [0])
    assert prepare_path(Path(manifest.runs[0].config), "rel-full-s0") == str(base_dir / "raw")


def test_a_control_ranks_as_it_was_tuned_or_with_any_index(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    for extra in ("[align]\nindex_permute = 7\n[rank]\nindex_permute = 7",
                  "[rank]\nindex_permute = 7\nany_index = true"):
        config.write_text(_merged(extra), encoding="utf-8")
        build_plans(load_config(config), tmp_path / "runs" / "x")
