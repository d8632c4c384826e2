"""`ulmrec experiment`: variant configs that share stages, and a report whose paired comparisons and plots
come from the runs' own predictions (fixture runs written with the real schemas; no LLM is trained here)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ulmrec_app.experiment.ablate import plan_experiment
from ulmrec_app.experiment.report import build_report, render_markdown, write_report
from ulmrec_app.experiment.variants import overrides
from ulmrec_app.pipeline.config import load_config
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.stages import build_plans
from ulmrec_eval.runtime.errors import UlmrecError
from ulmrec_eval.runtime.io import atomic_write_jsonl

N = 5


def _run(root: Path, name: str, *, seed: int, skill: float, users: int = 60, cold_skill: float | None = None,
         world: int = 0, n: int = N, final_loss: float = 0.5) -> Path:
    """A run folder with test predictions whose LLM puts the target first with probability ``skill`` (last,
    with a negative ``skill``); with
    ``cold_skill``, every third user is a cold-start user (held out of training) ranked with that skill. The
    retriever's candidates and the targets come from ``world`` alone (the runs of one experiment share them),
    the LLM's scores from ``seed`` and ``skill``; the LLM ranks the first ``n`` candidates; its next-item
    training loss ends at ``final_loss``."""
    world_rng = np.random.default_rng(10_000 + world)
    rng = np.random.default_rng(abs(seed * 100 + int(skill * 10)))
    folder = root / name
    rank_rows, cand_rows = [], []
    for user in range(users):
        items = list(range(100 + user, 100 + user + n + 3))
        target = items[int(world_rng.integers(n))] if user % 6 else 9999          # one in six: not retrieved
        retriever_scores = sorted(world_rng.normal(size=len(items)).tolist(), reverse=True)
        cand_rows.append({"user_id": user, "raw_user_id": f"u{user}", "split": "test", "candidates": items,
                          "scores": retriever_scores, "target": target,
                          "target_in_candidates": target in items,
                          "history_length": 2 + user % 12})
        llm = rng.normal(size=n)
        cold = cold_skill is not None and user % 3 == 0
        if target in items[:n] and rng.random() < (cold_skill if cold else skill):
            llm[items.index(target)] = 10.0
        elif target in items[:n] and skill < 0:                     # a ranker worse than chance: last
            llm[items.index(target)] = -10.0
        rank_rows.append({"user_id": user, "raw_user_id": f"u{user}", "split": "test", "target": target,
                          "candidates": items[:n], "scores": llm.tolist(), "source": "logits:m",
                          "history_length": 2 + user % 12, "retrieved_n": n,
                          **({"cold_start": cold} if cold_skill is not None else {})})
    atomic_write_jsonl(folder / "rank" / "predictions.jsonl", rank_rows)
    atomic_write_jsonl(folder / "retrieve" / "retriever" / "candidates.jsonl", cand_rows)
    curve = [{"step": s, "loss": 2.0 - s / 20, "lr": 1e-3,
              "task_loss": {"next_item": final_loss + (40 - s) / 20}}
             for s in range(10, 41, 10)]
    (folder / "train" / "model").mkdir(parents=True)
    (folder / "train" / "model" / "train_manifest.json").write_text(_train_manifest(
        curve=curve, history=[{"step": 20, "ndcg_at_10": 0.5, "task_exact": {"pref_to_index": 0.2}},
                              {"step": 40, "ndcg_at_10": 0.6, "task_exact": {"pref_to_index": 0.7}}],
        steps=40).model_dump_json())
    return folder


def _train_manifest(*, loss: str = "letters", answer: str = "letter", **fields: Any) -> Any:
    """A tuned model's ``train_manifest.json`` as ``align train`` writes it (the report reads it through
    its model)."""
    from ulmrec_align.models.train_manifest import BaseModelInfo, LoraSettings, TrainManifest, TrainSettings
    from ulmrec_align.prompts.config import PromptConfig

    return TrainManifest(base_model=BaseModelInfo(name="m", path="m", identity="hub:m"), samples_path="S",
                         samples_manifest_sha256="0" * 64, samples_config={},
                         prompt=PromptConfig(answer=answer), index_tokens="plain", lora=LoraSettings(),
                         train=TrainSettings(loss=loss), quantization="none", device="cpu",
                         train_samples=1, valid_samples=1, status="complete", **fields)


def _records(folder: Path, *, data: str = "data-0", align: tuple[str, ...] = ("--index", "IDX")) -> Path:
    """Stage records (as `ulmrec run` writes them) for a :func:`_run` folder: data, retrieve, align, train and
    rank done, each made from the outputs its upstream stages record; ``align``: options of its command."""
    from ulmrec_app.pipeline.manifest import StageManifest, stamp_outputs

    outputs = {"data": "dataset", "retrieve": "retriever", "align": "samples", "train": "model",
               "rank": "predictions.jsonl"}
    depends = {"data": [], "retrieve": ["data"], "align": ["data", "retrieve"], "train": ["align"],
               "rank": ["train", "data", "retrieve"]}
    hashes = {"data": data}
    for stage in ("data", "retrieve", "align", "train", "rank"):
        (folder / stage).mkdir(parents=True, exist_ok=True)
        stamps = stamp_outputs(folder / stage, [outputs[stage]])
        hashes.setdefault(stage, f"{stage}-" + "-".join(f.sha256 or "" for f in stamps.values())[:40])
        commands = [["ulmrec", "align", "build", "--data", "D", *align, "--out", "S"]] if stage == "align" \
            else [["ulmrec", stage]]
        StageManifest(stage=stage, run=folder.name, status="done", output_hash=hashes[stage],
                      input_hashes={f"stage:{d}": hashes[d] for d in depends[stage]}, commands=commands,
                      outputs=[outputs[stage]], output_files=stamps).save(folder / stage)
    return folder


def test_variants_change_only_their_options_and_share_the_rest(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    variants = ["full", "noindex", "permuted", "no-intent", "random", "nofusion", "text"]
    manifest = plan_experiment(config, tmp_path / "runs", variants, [0, 1])
    assert [r.run for r in manifest.runs[:4]] == ["demo-full-s0", "demo-noindex-s0", "demo-permuted-s0",
                                                  "demo-no-intent-s0"]
    plans = {r.run: {p.name: p for p in build_plans(load_config(Path(r.config)), tmp_path / "runs" / r.run)}
             for r in manifest.runs}
    full, permuted = plans["demo-full-s0"], plans["demo-permuted-s0"]
    for stage in ("data", "users", "index", "retrieve"):   # shared: the same command lines
        assert full[stage].commands[0].identity() == permuted[stage].commands[0].identity()
    assert "index" not in plans["demo-noindex-s0"]
    assert permuted["rank"].commands[0].settings["index_permute"] == 1000
    drawn = plans["demo-random-s1"]
    assert drawn["align"].commands[0].settings["index_random"] == 2001
    assert drawn["rank"].commands[0].settings["index_random"] == 2001
    assert drawn["index"].commands[0].identity() == full["index"].commands[0].identity()
    unfused = plans["demo-nofusion-s0"]["index"].commands[0]
    assert unfused.settings["fusion"] == "none"                            # its own index, the rest shared
    assert unfused.identity() != full["index"].commands[0].identity()
    assert "intent=0" in plans["demo-no-intent-s1"]["align"].commands[0].settings["task_weight"]
    assert "max_minutes" not in full["train"].commands[0].settings        # fixed steps: nothing to lift
    demo = {p.name: p for p in build_plans(load_config(config), tmp_path / "runs" / "demo")}
    for stage in ("align", "train", "rank"):                 # seed 0's full run reuses the demo's stages
        assert full[stage].commands[0].identity() == demo[stage].commands[0].identity()
    assert overrides("full", 0, {"train": {"max_minutes": 30}})["train"]["max_minutes"] == 100_000
    text = plans["demo-text-s0"]
    assert "index" not in text                                  # no index: the preference text instead
    assert text["align"].commands[0].settings["user_text"] is True
    assert "--user-text" in text["align"].commands[0].argv()
    with pytest.raises(PipelineError, match="unknown variant"):
        overrides("nope", 0, {})


def test_report_compares_each_variant_with_full_over_seed_user_pairs(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"x-{variant}-s{seed}", seed=seed, skill=skill)
            for seed in (0, 1) for variant, skill in (("full", 0.9), ("noindex", 0.1))]
    report, by_variant = build_report(runs)
    assert [r.variant for r in report.rows] == ["LRURec order", "x-full", "x-noindex"]
    # the run names carry no "full": the variant is the name without its seed suffix
    report, by_variant = build_report([_run(tmp_path / "b", f"full-s{s}", seed=s, skill=0.9) for s in (0, 1)]
                                      + [_run(tmp_path / "b", f"noindex-s{s}", seed=s, skill=0.1)
                                         for s in (0, 1)])
    assert "text − noindex" not in report.comparisons
    noindex = next(c for c in report.comparisons["noindex − full"] if c.metric == "recall@1")
    assert noindex.n_users == 2 * 50                     # the subset of both seeds, paired
    assert noindex.difference < -0.5
    assert noindex.p_value < 0.01
    assert "full − LRURec order" in report.comparisons
    assert report.rows[1].variant == "full"
    assert report.learned is True             # skill 0.9 against the retriever's order, loss 0.5 < ln 5
    out = write_report(report, by_variant, tmp_path / "report")
    text = out.read_text()
    assert "| noindex − full | recall@1 | 100 |" in text
    assert "## NDCG@10 by history length" in text
    assert {Path(p).name for p in report.plots} == {"metrics_by_k.png", "forest.png", "curves.png",
                                                   "buckets.png"}
    assert all(Path(p).stat().st_size > 1000 for p in report.plots)
    assert render_markdown(report) == text


def test_report_refuses_a_run_whose_stages_are_not_all_done(tmp_path: Path) -> None:
    from ulmrec_app.pipeline.manifest import StageManifest

    runs = [_run(tmp_path, f"full-s{s}", seed=s, skill=0.9) for s in (0, 1)]
    StageManifest(stage="train", run="full-s1", status="stopped").save(runs[1] / "train")
    with pytest.raises(PipelineError, match=r"full-s1: train is stopped: its predictions may not come"):
        build_report(runs)


def test_report_compares_cold_start_users_separately(tmp_path: Path) -> None:
    """Users held out of LLM training (rows with cold_start) get their own table and paired comparison: here
    the index variant keeps its skill on them and the no-index one loses it."""
    runs = [_run(tmp_path, f"full-s{s}", seed=s, skill=0.9, cold_skill=0.9) for s in (0, 1)] + \
           [_run(tmp_path, f"noindex-s{s}", seed=s, skill=0.9, cold_skill=0.0) for s in (0, 1)]
    report, _ = build_report(runs)
    cold = next(c for c in report.comparisons["noindex − full, cold-start users"] if c.metric == "recall@1")
    assert cold.n_users == 2 * sum(1 for u in range(0, 60, 3) if u % 6)      # cold users of the subset
    assert cold.difference < -0.5
    assert cold.p_value < 0.01
    warm = next(c for c in report.comparisons["noindex − full"] if c.metric == "recall@1")
    assert warm.difference > cold.difference
    full = next(r for r in report.rows if r.variant == "full")
    assert full.cold_users == 10
    assert full.cold_subset["recall@1"] > 0.7
    text = render_markdown(report)
    assert "## Cold-start users (held out of LLM training; subset)" in text
    assert "| noindex − full, cold-start users | recall@1 | 20 |" in text


def test_a_later_ablate_joins_the_experiment_record(tmp_path: Path) -> None:
    """Adding a seed or a variant later keeps the earlier runs in experiment.json (the report reads it), while
    the call itself plans only its own runs."""
    from ulmrec_app.experiment.ablate import ExperimentManifest

    config = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    plan_experiment(config, tmp_path / "runs", ["full", "noindex"], [0, 1])
    later = plan_experiment(config, tmp_path / "runs", ["full", "random"], [1, 2])
    assert [r.run for r in later.runs] == ["demo-full-s1", "demo-random-s1", "demo-full-s2", "demo-random-s2"]
    record = ExperimentManifest.load(tmp_path / "runs" / "demo-experiment")
    assert sorted(r.run for r in record.runs) == sorted(
        ["demo-full-s0", "demo-noindex-s0", "demo-noindex-s1", "demo-full-s1", "demo-random-s1",
         "demo-full-s2", "demo-random-s2"])
    assert record.variants == ["full", "noindex", "random"]
    assert record.seeds == [0, 1, 2]


def test_variants_and_seeds_can_be_listed_in_the_config(tmp_path: Path) -> None:
    """[experiment] variants/seeds are ablate's defaults; the command line wins; a typo is one line."""
    from support.cli import run_ulmrec

    base = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    config = tmp_path / "exp.toml"
    config.write_text(f'extends = "{base}"\nname = "exp"\n[experiment]\nvariants = ["full", "random"]\n'
                      "seeds = [0, 1]\n")
    listed = run_ulmrec("experiment", "ablate", config, "--runs", tmp_path / "runs", "--dry-run", check=True)
    assert "4 runs (full, random × seeds 0,1)" in listed.stderr
    given = run_ulmrec("experiment", "ablate", config, "--runs", tmp_path / "runs", "--variants", "noindex",
                       "--seeds", "3", "--dry-run", check=True)
    assert "1 runs (noindex × seeds 3)" in given.stderr
    config.write_text(f'extends = "{base}"\nname = "exp"\n[experiment]\nvariant = ["full"]\n')
    bad = run_ulmrec("experiment", "ablate", config, "--runs", tmp_path / "runs", "--dry-run")
    assert bad.returncode != 0
    assert "experiment.variant: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_token_loss_of_title_answers_is_not_held_to_ln_n() -> None:
    """ln(N) is the chance level of a cross-entropy over N candidates, not of a title's token loss: a title
    run is judged by the retriever comparison alone, and the report says why."""
    from ulmrec_app.experiment.model import ExperimentReport, VariantRow
    from ulmrec_app.experiment.report import is_ranking_loss, render_markdown

    assert is_ranking_loss(_train_manifest(loss="letters", answer="letter"))
    assert is_ranking_loss(_train_manifest(loss="choices", answer="title"))
    assert is_ranking_loss(_train_manifest(loss="relevance", answer="relevance"))
    assert not is_ranking_loss(_train_manifest(loss="letters", answer="title"))
    assert not is_ranking_loss(_train_manifest(loss="tokens", answer="letter"))
    row = VariantRow(variant="full", seeds=[0], n_users=3, subset={}, overall={}, buckets={},
                     last_next_item_loss=2.8, ranking_loss=False)
    report = ExperimentReport(runs=["r"], n_candidates=10, chance_loss=math.log(10), rows=[row],
                              comparisons={}, learned=False)
    text = render_markdown(report)
    assert "no chance level of ln(10) applies" in text
    assert "a next-item (ranking) loss at or above it learned nothing" not in text
    assert "training loss is not below" not in text
    with_letters = row.model_copy(update={"ranking_loss": True})
    letters = render_markdown(report.model_copy(update={"rows": [with_letters]}))
    assert "training loss is not below ln(10)" in letters


def test_report_reads_the_text_variant_against_no_index(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"{variant}-s0", seed=0, skill=skill)
            for variant, skill in (("full", 0.5), ("noindex", 0.1), ("text", 0.9))]
    report, _ = build_report(runs)
    words = next(c for c in report.comparisons["text − noindex"] if c.metric == "recall@1")
    against_full = next(c for c in report.comparisons["text − full"] if c.metric == "recall@1")
    assert words.mean_b == against_full.mean_b                  # the same text runs, another reference
    assert words.mean_a < against_full.mean_a
    assert words.difference > 0.5


def test_a_variant_or_seed_given_twice_is_planned_once(tmp_path: Path) -> None:
    """`ablate --seeds 0,0 --variants full,full` plans (and records) each run once: a run recorded twice
    would count each of its users twice in every paired statistic of the report."""
    from support.cli import run_ulmrec

    from ulmrec_app.experiment.ablate import ExperimentManifest

    config = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    manifest = plan_experiment(config, tmp_path / "runs", ["full", "full", "noindex"], [0, 0])
    assert [r.run for r in manifest.runs] == ["demo-full-s0", "demo-noindex-s0"]
    record = ExperimentManifest.load(tmp_path / "runs" / "demo-experiment")
    assert [r.run for r in record.runs] == ["demo-full-s0", "demo-noindex-s0"]
    assert (record.variants, record.seeds) == (["full", "noindex"], [0])
    listed = run_ulmrec("experiment", "ablate", config, "--runs", tmp_path / "runs2", "--variants",
                        "full,full", "--seeds", "0,0", "--dry-run", check=True)
    assert "1 runs (full × seeds 0)" in listed.stderr


def test_report_reads_each_run_once(tmp_path: Path) -> None:
    """`report X X`, or an experiment folder and one of its runs: each run (and user) counts once."""
    from ulmrec_app.experiment.ablate import ExperimentManifest, ExperimentRun

    runs = [_run(tmp_path / "runs", f"{v}-s{s}", seed=s, skill=k)
            for s in (0, 1) for v, k in (("full", 0.9), ("noindex", 0.1))]
    once, _ = build_report(runs)
    twice, _ = build_report(runs + runs[:2])
    assert twice.runs == once.runs
    pairs = next(c for c in twice.comparisons["noindex − full"] if c.metric == "ndcg@10")
    assert pairs.n_users == 2 * 50
    assert pairs.p_value == next(c for c in once.comparisons["noindex − full"]
                                 if c.metric == "ndcg@10").p_value
    experiment = tmp_path / "runs" / "x-experiment"
    experiment.mkdir()
    ExperimentManifest(name="x", base_config="b.toml", runs_dir=str(tmp_path / "runs"),
                       variants=["full", "noindex"], seeds=[0, 1],
                       runs=[ExperimentRun(variant=v, seed=s, run=f"{v}-s{s}", config="c.toml")
                             for s in (0, 1) for v in ("full", "noindex")]).save(experiment)
    both, _ = build_report([experiment, runs[0]])
    assert len(both.runs) == 4
    assert next(c for c in both.comparisons["noindex − full"] if c.metric == "ndcg@10").n_users == 2 * 50


def test_report_refuses_runs_of_other_data_candidates_or_pool_sizes(tmp_path: Path) -> None:
    """Two experiments' runs are never mixed: their dense user ids are other people (`report A/exp B/exp`)."""
    a = [_run(tmp_path / "a", f"{v}-s0", seed=0, skill=k) for v, k in (("full", 0.9), ("noindex", 0.1))]
    other_world = _run(tmp_path / "b", "noindex-s1", seed=1, skill=0.1, world=1)
    with pytest.raises(PipelineError, match=r"differ in their candidate sets .*: full-s0, noindex-s0; "):
        build_report([*a, other_world])
    smaller_pool = _run(tmp_path / "c", "noindex-s1", seed=1, skill=0.1, n=4)
    with pytest.raises(PipelineError, match=r"differ in their (candidate sets|pool sizes)"):
        build_report([*a, smaller_pool])
    same_variant = _run(tmp_path / "d", "full-s0", seed=0, skill=0.5)
    with pytest.raises(PipelineError, match=r"two runs of variant full, seed 0: .*a/full-s0 and .*d/full-s0"):
        build_report([*a, same_variant])
    records = [_records(_run(tmp_path / "e", f"{v}-s0", seed=0, skill=0.5), data=f"data-{v}")
               for v in ("full", "noindex")]
    with pytest.raises(PipelineError, match=r"differ in their datasets \(data data-full: full-s0; data "
                                            r"data-noindex: noindex-s0\)"):
        build_report(records)


def test_report_refuses_a_run_whose_reused_stage_was_rerun_since(tmp_path: Path) -> None:
    """`cold-s0/retrieve` is a link to `cb/retrieve` (a reused stage); rerunning cb's retrieve rewrites it
    under cold-s0, whose LLM then ranked other candidates than the retriever order the report compares with:
    the report refuses that run, naming it and the link, and a prediction file edited by hand too."""
    import os
    import shutil

    from ulmrec_app.pipeline.manifest import StageManifest, stamp_outputs

    runs = tmp_path / "runs"
    cb = _records(_run(runs, "cb", seed=0, skill=0.5))
    cold = _records(_run(runs, "cold-s0", seed=0, skill=0.9))
    build_report([cold])                                       # consistent: reads fine
    shutil.rmtree(cold / "retrieve")
    os.symlink("../cb/retrieve", cold / "retrieve")
    build_report([cold])                                       # still the candidates cold-s0 was made from
    atomic_write_jsonl(cb / "retrieve" / "retriever" / "candidates.jsonl", [])   # cb reruns its retrieve
    record = StageManifest.load(cb / "retrieve")
    record.output_hash = "retrieve-rerun"
    record.output_files = stamp_outputs(cb / "retrieve", ["retriever"])
    record.save(cb / "retrieve")
    with pytest.raises(UlmrecError, match=r"stage rank of run cold-s0 was made from another retrieve than "
                                          r".*cold-s0/retrieve \(a link to .*cb/retrieve\) holds now"):
        build_report([cold])
    edited = _records(_run(runs, "edited-s0", seed=0, skill=0.9))
    with (edited / "rank" / "predictions.jsonl").open("a") as handle:
        handle.write("\n")
    with pytest.raises(UlmrecError, match=r"predictions.jsonl: changed since stage rank of run edited-s0"):
        build_report([edited])


def test_report_pairs_runs_by_what_they_are_not_by_folder_names(tmp_path: Path) -> None:
    """The README's main job: `report runs/demo runs/demo-noindex` (and `demo-full-s0 demo-noindex-s0`)
    compares the no-index run with the index run and the index run with the retriever."""
    runs = tmp_path / "runs"
    demo = _records(_run(runs, "demo", seed=0, skill=0.9), align=("--index", "/r/demo/index/index"))
    plain = _records(_run(runs, "demo-noindex", seed=0, skill=0.1), align=("--index", "none"))
    report, _ = build_report([demo, plain])
    assert report.baseline == "demo"
    assert set(report.comparisons) == {"demo − LRURec order", "demo-noindex − demo"}
    worse = next(c for c in report.comparisons["demo-noindex − demo"] if c.metric == "recall@1")
    assert worse.difference < -0.5
    assert report.learned is True
    assert "Full ULMRec (the baseline of every comparison): demo." in render_markdown(report)
    named = [_run(tmp_path / "b", f"demo-{v}-s0", seed=0, skill=k)
             for v, k in (("full", 0.9), ("noindex", 0.1))]
    report, _ = build_report(named)                 # no stage records: `<name>-full` is the baseline
    assert set(report.comparisons) == {"demo-full − LRURec order", "demo-noindex − demo-full"}
    # the records win over the names: here "full" is the no-index run, and "b" the run with an index
    liar = [_records(_run(tmp_path / "c", "full-s0", seed=0, skill=0.1), align=("--index", "none")),
            _records(_run(tmp_path / "c", "b-s0", seed=0, skill=0.9), align=("--index", "/i")),
            _records(_run(tmp_path / "c", "words-s0", seed=0, skill=0.9), align=("--index", "none",
                                                                                   "--user-text"))]
    report, _ = build_report(liar)
    assert report.baseline == "b"
    assert {"full − b", "words − b", "words − full", "b − LRURec order"} <= set(report.comparisons)
    two = [_records(_run(tmp_path / "d", f"{v}-s0", seed=0, skill=0.5), align=("--index", f"/{v}"))
           for v in ("one", "two")]
    report, _ = build_report(two)                   # two index runs, neither named full: no baseline
    assert report.baseline is None
    assert report.comparisons == {}
    assert render_markdown(report).splitlines()[2].startswith("**No baseline**")


def test_the_learned_verdict_needs_a_win_over_the_retriever_and_a_loss_below_chance(tmp_path: Path) -> None:
    """Issue 27: the report's headline. A winning LLM (above the retriever's order, paired p < 0.05, next-item
    loss below ln N) learned; one that does not beat the retriever, or whose loss stays at chance, did not."""
    def verdict(name: str, skill: float, final_loss: float) -> bool:
        runs = [_run(tmp_path / name, f"full-s{s}", seed=s, skill=skill, final_loss=final_loss)
                for s in (0, 1)]
        report, _ = build_report(runs)
        versus = next(c for c in report.comparisons["full − LRURec order"] if c.metric == "ndcg@10")
        text = render_markdown(report)
        assert ("The LLM learned" in text) is report.learned
        assert ("**The LLM has not learned to rank here**" in text) is not report.learned
        assert (versus.difference > 0 and versus.p_value < 0.05) is (skill > 0.5)
        return report.learned

    chance = math.log(N)
    assert verdict("wins", 0.95, chance - 0.5) is True
    assert verdict("random", 0.0, chance - 0.5) is False           # no better than the retriever's order
    assert verdict("worse", -1.0, chance - 0.5) is False           # significantly worse than it
    assert verdict("at-chance", 0.95, chance + 0.1) is False       # ranks well, but its loss learned nothing


def test_the_experiment_record_is_updated_under_its_lock_and_never_silently_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `ablate` calls of one config take the record in turn: from reading the earlier record to writing
    the joined one, its lock is held (a second writer waits); a corrupt record, or another config's record of
    the same name, is refused, not replaced."""
    import fcntl
    import os

    from ulmrec_app.experiment import ablate
    from ulmrec_app.experiment.ablate import ExperimentManifest
    from ulmrec_eval.runtime.artifacts import lock_path

    config = Path(__file__).resolve().parents[2] / "configs" / "demo-cpu.toml"
    folder = tmp_path / "runs" / "demo-experiment"
    plan_experiment(config, tmp_path / "runs", ["full"], [0])
    seen: list[str] = []

    def locked() -> bool:
        fd = os.open(lock_path(folder / "experiment.json"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    real_load, real_save = ExperimentManifest.load.__func__, ExperimentManifest.save   # type: ignore[attr-defined]
    monkeypatch.setattr(ExperimentManifest, "load", classmethod(
        lambda cls, f: (seen.append(f"load locked={locked()}"), real_load(cls, f))[1]))
    monkeypatch.setattr(ExperimentManifest, "save",
                        lambda self, f: (seen.append(f"save locked={locked()}"), real_save(self, f))[1])
    ablate.plan_experiment(config, tmp_path / "runs", ["noindex"], [0])
    assert seen == ["load locked=True", "save locked=True"]
    monkeypatch.undo()
    assert sorted(r.run for r in ExperimentManifest.load(folder).runs) == ["demo-full-s0", "demo-noindex-s0"]

    (folder / "experiment.json").write_text('{"name": "demo", "runs": [', encoding="utf-8")
    with pytest.raises(PipelineError, match=r"experiment.json: unreadable experiment record \(.*malformed "
                                            r"JSON.*\); it lists the runs"):
        plan_experiment(config, tmp_path / "runs", ["random"], [0])
    assert (folder / "experiment.json").read_text(encoding="utf-8") == '{"name": "demo", "runs": ['
    other = tmp_path / "elsewhere" / "demo.toml"
    other.parent.mkdir()
    other.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "experiment.json").unlink()
    plan_experiment(config, tmp_path / "runs", ["full"], [0])
    with pytest.raises(PipelineError, match=r"the record of another experiment named 'demo'"):
        plan_experiment(other, tmp_path / "runs", ["full"], [0])


def test_the_report_folder_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun replaces the report folder at once (no stale plot survives); a write that dies half-way leaves
    the previous report whole; a folder holding anything else is refused."""
    from ulmrec_app.experiment import report as report_module

    runs = [_run(tmp_path, f"{v}-s0", seed=0, skill=k) for v, k in (("full", 0.9), ("noindex", 0.1))]
    out = tmp_path / "report"
    report, by_variant = build_report(runs)
    write_report(report, by_variant, out)
    (out / "stale-plot.png").write_bytes(b"old")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def dies(_: object) -> str:
        raise RuntimeError("killed")

    monkeypatch.setattr(report_module, "render_markdown", dies)
    with pytest.raises(RuntimeError, match="killed"):
        write_report(report, by_variant, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before          # the previous report, whole
    monkeypatch.undo()
    write_report(report, by_variant, out)
    assert sorted(p.name for p in out.iterdir()) == ["buckets.png", "curves.png", "forest.png",
                                                     "metrics_by_k.png", "report.json", "report.md"]
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"--out .*notes holds other files than a report \(thesis.tex…\)"):
        write_report(report, by_variant, mine)
    assert (mine / "thesis.tex").read_text(encoding="utf-8") == "mine"


def test_the_report_names_each_runs_fusion_weight(tmp_path: Path) -> None:
    """A run ranked fused with the retriever (``align rank --fuse-retriever``) shows its W per seed in the
    report's rows and table; an unfused run shows —; rows fused at two weights are refused."""
    import json

    runs = [_run(tmp_path, f"full-s{s}", seed=s, skill=0.9) for s in (0, 1)]
    for run, weight in zip(runs, (2.5, 100.0), strict=True):
        path = run / "rank" / "predictions.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        atomic_write_jsonl(path, [{**row, "fusion_weight": weight} for row in rows])
    plain = [_run(tmp_path, f"noindex-s{s}", seed=s, skill=0.1) for s in (0, 1)]
    report, _ = build_report(runs + plain)
    by_name = {row.variant: row for row in report.rows}
    assert by_name["full"].fusion_weights == [2.5, 100.0]
    assert by_name["noindex"].fusion_weights == [None, None]
    text = render_markdown(report)
    assert "| W |" in text
    assert next(line for line in text.splitlines() if line.startswith("| full |")).endswith("| 2.5, 100 |")
    path = runs[0] / "rank" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    atomic_write_jsonl(path, [{**row, "fusion_weight": 1.0 + (i % 2)} for i, row in enumerate(rows)])
    with pytest.raises(Exception, match="different weights"):
        build_report(runs + plain)
