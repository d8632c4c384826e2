"""``align build`` on a real (synthetic) pipeline: every task where the data supports it, skipped with a
reason where not, deterministic, typed hand-offs read back by the next stage's reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.models.testing import tiny_tokenizer
from ulmrec_align.prompts.letters import letter
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_align.tasks.build import build_samples, load_inputs
from ulmrec_align.tasks.registry import DEFAULT_TASKS, available_tasks
from ulmrec_align.tasks.schema import AlignConfig, read_manifest, read_samples
from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.artifact import load_index


def _build(pipeline: Pipeline, *, index: bool = True, **config: Any):  # type: ignore[no-untyped-def]
    dataset, artifact, rows, inputs = load_inputs(pipeline.data, pipeline.index if index else None,
                                                  pipeline.candidates)
    cfg = AlignConfig(tasks=list(DEFAULT_TASKS), **config)
    return dataset, build_samples(dataset, cfg, tiny_tokenizer(), index=artifact, candidates=rows,
                                  inputs=inputs, paths={}, tokenizer_name="tiny")


def test_all_six_tasks_are_registered_through_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {e.name for e in entry_points(group="ulmrec.tasks")}
    assert set(DEFAULT_TASKS) <= names
    assert list(available_tasks())[:6] == list(DEFAULT_TASKS)


def test_every_task_is_built_on_data_that_supports_it(pipeline: Pipeline) -> None:
    dataset, result = _build(pipeline)
    counts = result.manifest.counts["train"]
    assert set(counts) == set(DEFAULT_TASKS), result.manifest.skipped
    assert result.manifest.skipped == {}
    index = load_index(pipeline.index)
    by_task: dict[str, list[Any]] = {}
    for sample in result.samples["train"]:
        by_task.setdefault(sample.task, []).append(sample)
    per_user: dict[int, list[Any]] = {}
    for sample in by_task["next_item"]:
        per_user.setdefault(sample.user_id, []).append(sample)
    for user, rows in per_user.items():
        s = dataset.splits[user]
        # one sample per prefix (the latest 10), each predicting train[t] from train[:t]
        assert [r.target for r in rows] == list(s.train[1:])[-10:]
    for sample in by_task["next_item"]:
        s = dataset.splits[sample.user_id]
        t = list(s.train).index(sample.target)                    # training interactions only
        assert t >= 1
        assert sample.candidates is not None
        assert len(sample.candidates) == 20
        assert sample.response == sample.target_letter == letter(sample.candidates.index(sample.target))
        history = s.train[:t]
        assert not set(sample.candidates) - {sample.target} & set(history)   # negatives not in history
        assert f"User Index: {index.token(sample.raw_user_id)}\n" in sample.prompt
        start, end = sample.prompt_code_spans[0]
        assert sample.prompt[start:end] == index.token(sample.raw_user_id)
    for sample in by_task["pref_to_index"] + by_task["history_to_index"]:
        assert sample.response == index.token(sample.raw_user_id)
        assert sample.response_code_spans == [(0, len(sample.response))]
        assert "User Index:" not in sample.prompt                 # the answer is not in the question
    for sample in by_task["rating"]:
        assert sample.response in {"1", "2", "3", "4", "5"}
    valid_tasks = {sample.task for sample in result.samples["valid"]}
    assert valid_tasks == {"next_item", "pref_to_index", "history_to_index"}   # ranking + code writing
    for sample in result.samples["valid"]:
        if sample.task != "next_item":                  # validation of alignment: write the user's code
            assert sample.response == index.token(sample.raw_user_id)
            assert "User Index:" not in sample.prompt
            continue
        s = dataset.splits[sample.user_id]
        assert sample.target == s.valid_target
        assert sample.candidates is not None
        assert sample.target in sample.candidates


def test_the_build_is_deterministic_and_tasks_do_not_disturb_each_other(pipeline: Pipeline) -> None:
    _, first = _build(pipeline)
    _, again = _build(pipeline)
    assert first.samples == again.samples
    _, only_next = _build(pipeline, task_weights={"rating": 0.0})
    nxt = [s for s in first.samples["train"] if s.task == "next_item"]
    assert [s for s in only_next.samples["train"] if s.task == "next_item"] == nxt
    assert "rating" not in only_next.manifest.counts["train"]


def test_task_weights_scale_samples_per_user(pipeline: Pipeline) -> None:
    _, result = _build(pipeline, task_weights={"rating": 2.0, "index_to_pref": 0.5})
    counts = result.manifest.counts["train"]
    assert counts["rating"] == 2 * counts["history_to_index"]   # one per user at weight 1
    assert 0 < counts["index_to_pref"] < counts["history_to_index"]


def test_no_index_baseline_keeps_only_the_tasks_without_an_index(pipeline: Pipeline) -> None:
    _, result = _build(pipeline, index=False)
    assert set(result.manifest.counts["train"]) == {"next_item"}
    assert set(result.manifest.skipped) == set(DEFAULT_TASKS) - {"next_item"}
    assert all("User Index:" not in s.prompt for s in result.samples["train"])


def test_data_without_ratings_or_reviews_skips_those_tasks_with_a_reason(pipeline: Pipeline) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    dataset.manifest.has_ratings = False
    for seq in dataset.sequences:
        seq.ratings, seq.reviews, seq.summaries = None, None, None
    artifact = load_index(pipeline.index)
    rows = read_candidates(pipeline.candidates)
    _, _, _, inputs = load_inputs(pipeline.data, pipeline.index, pipeline.candidates)
    result = build_samples(dataset, AlignConfig(tasks=list(DEFAULT_TASKS)), tiny_tokenizer(), index=artifact,
                           candidates=rows, inputs=inputs, paths={}, tokenizer_name="tiny")
    assert "ratings" in result.manifest.skipped["rating"]
    assert "review" in result.manifest.skipped["intent"]
    assert {"index_to_pref", "pref_to_index", "history_to_index", "next_item"} <= set(
        result.manifest.counts["train"])


def test_candidates_of_another_dataset_are_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in pipeline.candidates.read_text().splitlines()]
    rows[0]["target"] = (rows[0]["target"] + 1) % PreparedDataset.load(pipeline.data).n_items
    bad = tmp_path / "candidates.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="another dataset"):
        load_inputs(pipeline.data, pipeline.index, bad)


def test_cli_build_writes_a_whole_folder_read_by_the_next_stage(pipeline: Pipeline, tmp_path: Path,
                                                                tiny_llm: Path) -> None:
    out = tmp_path / "align"
    proc = ulmrec("align", "build", "--data", pipeline.data, "--index", pipeline.index, "--candidates",
                  pipeline.candidates, "--out", out, "--model", tiny_llm, "--n-candidates", "8",
                  "--history-items", "5", "--task-weight", "rating=0.5", "--no-progress")
    assert "train:" in proc.stderr
    manifest = read_manifest(out)
    assert manifest.config.prompt.n_candidates == 8
    assert manifest.inputs.data_split_sha256 == PreparedDataset.load(pipeline.data).manifest.split_sha256
    train = read_samples(out, "train")
    assert sum(manifest.counts["train"].values()) == len(train)
    assert all(len(s.candidates or []) in (0, 8) for s in train)
    shown = ulmrec("align", "inspect", out).stdout
    assert "next_item" in shown
    assert "### Response:" in shown
    import subprocess

    refused = subprocess.run([sys.executable, "-m", "ulmrec_app.main", "align", "build", "--data",
                              str(pipeline.data), "--out", str(out), "--model", str(tiny_llm)],
                             capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_retriever_negatives_are_its_best_items_for_that_prefix_only(pipeline: Pipeline) -> None:
    """--negatives retriever: each next_item sample's negatives are the retriever's best items when it reads
    only the prefix before the target (no later interaction), best first, the prefix and target excluded."""
    import torch

    from ulmrec_align.retrieval.api import load_retriever

    retriever = load_retriever(pipeline.candidates.parent)[0]
    dataset, artifact, rows, inputs = load_inputs(pipeline.data, pipeline.index, pipeline.candidates)
    cfg = AlignConfig(tasks=["next_item"], negatives="retriever", max_users=6)
    with pytest.raises(Exception, match="needs --retriever"):
        build_samples(dataset, cfg, tiny_tokenizer(), index=artifact, candidates=rows, inputs=inputs,
                      paths={}, tokenizer_name="tiny")
    result = build_samples(dataset, cfg, tiny_tokenizer(), index=artifact, candidates=rows, inputs=inputs,
                           paths={}, tokenizer_name="tiny", retriever=retriever)
    samples = [s for s in result.samples["train"] if s.task == "next_item"]
    assert samples
    for sample in samples:
        train = list(dataset.splits[sample.user_id].train)
        prefix = train[: train.index(sample.target)]
        scores = retriever.score_histories([prefix])[0].clone()
        scores[prefix] = -float("inf")
        best = [int(i) for i in torch.argsort(scores, descending=True) if int(i) != sample.target]
        negatives = [c for c in sample.candidates or [] if c != sample.target]
        assert sorted(negatives) == sorted(best[: len(negatives)])


def _codes_shown(samples: list[Any]) -> dict[int, str]:
    """User -> the code span its history_to_index samples answer with."""
    return {s.user_id: s.response.strip() for s in samples if s.task == "history_to_index"}


def test_code_controls_keep_the_code_space_and_drop_the_user_information(pipeline: Pipeline) -> None:
    """--index-permute: the same multiset of codes, moved between users; --index-random: distinct codes of
    the index's length and vocabulary, not the users' own; both at once is refused."""
    from ulmrec_index.codes import format_code

    _, real = _build(pipeline)
    _, permuted = _build(pipeline, index_permute=1)
    _, drawn = _build(pipeline, index_random=1)
    real_codes = _codes_shown(real.samples["train"])
    permuted_codes = _codes_shown(permuted.samples["train"])
    random_codes = _codes_shown(drawn.samples["train"])
    assert len(real_codes) >= 10
    assert set(real_codes) == set(permuted_codes) == set(random_codes)
    assert sorted(permuted_codes.values()) == sorted(real_codes.values())   # the same multiset of codes
    kept = sum(permuted_codes[u] == real_codes[u] for u in real_codes)
    assert kept <= len(real_codes) // 20                                 # hardly anyone keeps its own
    assert len(set(random_codes.values())) == len(random_codes)             # distinct, as real codes are
    index = load_index(pipeline.index)
    space = {format_code([a, b, c], index.token_format) for a in range(index.codebook_sizes[0])
             for b in range(index.codebook_sizes[1]) for c in range(index.codebook_sizes[2])}
    assert set(random_codes.values()) <= space
    same = sum(random_codes[u] == real_codes[u] for u in real_codes)
    assert same <= 1                                                      # not the users' own codes
    with pytest.raises(InputError, match="two different controls"):
        _build(pipeline, index_permute=1, index_random=1)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 48])
def test_permuted_codes_move_every_user(n: int) -> None:
    """--index-permute is a real shuffle for any population: the same multiset of codes, no user keeps its
    own, seeded; not a near-identity (e.g. two users swapped)."""
    from ulmrec_align.tasks.build import permute_codes

    codes = {u: f"<a_{u}><b_{u % 3}>" for u in range(n)}
    outcomes = []
    for seed in range(6):
        shuffled = permute_codes(codes, seed)
        assert sorted(shuffled) == sorted(codes)
        assert sorted(shuffled.values()) == sorted(codes.values())
        assert [u for u in codes if shuffled[u] == codes[u]] == []
        assert permute_codes(codes, seed) == shuffled                    # seeded
        outcomes.append(tuple(shuffled[u] for u in range(n)))
    if n >= 5:
        assert len(set(outcomes)) > 1                                    # the seed matters
    assert permute_codes(codes, None) == codes


def test_cold_start_users_get_no_samples_and_the_index_must_agree(pipeline: Pipeline) -> None:
    """--cold-share: the users ulmrec_eval.cold_start names get no sample of any task (train or valid);
    an index that held out another share is refused."""
    from ulmrec_eval.cold_start import is_cold

    dataset, warm = _build(pipeline)
    _, built = _build(pipeline, index=False, cold_share=0.3, cold_seed=2)   # no index: nothing to agree
    with pytest.raises(InputError, match=r"holds out no users as cold-start"):   # an index fitted on all
        _build(pipeline, cold_share=0.3, cold_seed=2)
    cold = {u.user_id for u in dataset.users if is_cold(u.raw_id, 0.3, seed=2)}
    assert 0 < len(cold) < dataset.n_users
    assert built.manifest.cold_users == len(cold)
    seen = {s.user_id for split in built.samples.values() for s in split}
    assert seen
    assert not seen & cold
    assert {s.user_id for s in warm.samples["train"]} & cold            # without the option they train
    dataset, artifact, rows, inputs = load_inputs(pipeline.data, pipeline.index, pipeline.candidates)
    assert artifact is not None
    held = artifact.model_copy(update={"cold_users": ["x"], "cold_share": 0.2, "cold_seed": 2})
    with pytest.raises(InputError, match=r"holds out 0\.2 of the users"):
        build_samples(dataset, AlignConfig(tasks=list(DEFAULT_TASKS), cold_share=0.3, cold_seed=2),
                      tiny_tokenizer(), index=held, candidates=rows, inputs=inputs, paths={},
                      tokenizer_name="tiny")
