"""``align build --user-text``: the next_item prompts show the user's preference text in words, written
from training reviews only, and ``align rank`` renders exactly the prompts training and validation saw."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.ranker import ranking_prompts
from ulmrec_align.ranking.recommender import Recommender
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_align.tasks.schema import read_samples
from ulmrec_align.tasks.summarise import ExtractiveSummariser, training_preference
from ulmrec_eval.runtime.errors import InputError

PROMPT = PromptConfig(n_candidates=8, history_items=4, title_tokens=8, answer="title", user_text=True)


def _build(pipeline: Pipeline, tiny_llm: Path, out: Path, *extra: str) -> None:
    ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--candidates", pipeline.candidates,
           "--model", tiny_llm, "--tasks", "next_item", "--answer", "title", "--n-candidates", "8",
           "--history-items", "4", "--title-tokens", "8", "--no-progress", *extra)


def test_user_text_prompts_state_the_preference_and_rank_as_validated(pipeline: Pipeline, tiny_llm: Path,
                                                                      tmp_path: Path) -> None:
    _build(pipeline, tiny_llm, tmp_path / "text", "--user-text")
    _build(pipeline, tiny_llm, tmp_path / "plain")
    dataset = PreparedDataset.load(pipeline.data)
    ranker = load_ranking_model(tiny_llm, prompt=PROMPT)
    builder = PromptBuilder(ranker.tokenizer, PROMPT, titles=dataset.titles())
    summariser = ExtractiveSummariser()
    train = read_samples(tmp_path / "text", "train")
    assert train
    assert all(s.task == "next_item" for s in train)
    for s in train:
        text = training_preference(dataset, s.user_id, summariser)
        assert text
        assert f"Preferences: {builder.cut(text, PROMPT.text_tokens)}\n" in s.prompt
        assert s.prompt.index("Preferences:") < s.prompt.index("User history:")
    plain = read_samples(tmp_path / "plain", "train")
    assert [s.response for s in plain] == [s.response for s in train]         # only the prompts differ
    assert not any("Preferences:" in s.prompt for s in plain)
    # the ranker renders, for the same users, exactly the prompts validation scored
    valid = {s.user_id: s for s in read_samples(tmp_path / "text", "valid")}
    rows = [r for (split, user), r in read_candidates(pipeline.candidates).items()
            if split == "valid" and user in valid]
    assert rows
    for prompt in ranking_prompts(dataset, rows, builder, codes=None):
        assert prompt.rendered.text == valid[prompt.row.user_id].prompt
    with pytest.raises(InputError, match="align rank"):
        Recommender(ranker, dataset)


def test_the_preference_text_reads_training_reviews_only(pipeline: Pipeline) -> None:
    dataset = PreparedDataset.load(pipeline.data)
    user = next(u for u in range(dataset.n_users) if dataset.sequences[u].reviews)
    seq = dataset.sequences[user]
    assert seq.reviews is not None
    leak = "Zebra zebra zebra zebra zebra zebra."
    before = training_preference(dataset, user, ExtractiveSummariser())
    reviews = [*seq.reviews[:-2], leak, leak]                       # the validation and test reviews
    dataset.sequences[user] = seq.model_copy(update={"reviews": reviews})
    assert training_preference(dataset, user, ExtractiveSummariser()) == before
    dataset.sequences[user] = seq.model_copy(update={"reviews": [leak] * len(reviews)})
    assert "Zebra" in (training_preference(dataset, user, ExtractiveSummariser()) or "")


def test_user_text_refuses_data_without_texts_and_other_summarisers(pipeline: Pipeline,
                                                                    tiny_llm: Path) -> None:
    from ulmrec_align.models.loading import load_tokenizer
    from ulmrec_align.tasks.build import build_samples, load_inputs
    from ulmrec_align.tasks.schema import AlignConfig

    dataset, _, rows, inputs = load_inputs(pipeline.data, None, pipeline.candidates)
    tokenizer = load_tokenizer(tiny_llm)
    config = AlignConfig(tasks=["next_item"], prompt=PROMPT)

    def build(data: PreparedDataset, **kwargs: object) -> None:
        build_samples(data, config, tokenizer, index=None, candidates=rows, inputs=inputs, paths={},
                      tokenizer_name="tiny", **kwargs)  # type: ignore[arg-type]

    class Firsts:
        def summarise(self, texts: list[str]) -> str:
            return texts[0] if texts else ""

    with pytest.raises(InputError, match="align rank"):
        build(dataset, summariser=Firsts())
    dataset.users = [u.model_copy(update={"preference": None, "texts": []}) for u in dataset.users]
    dataset.sequences = [s.model_copy(update={"reviews": None, "summaries": None}) for s in dataset.sequences]
    with pytest.raises(InputError, match="no preference, review or user texts"):
        build(dataset)


def test_the_extractive_summary_says_a_repeated_sentence_once() -> None:
    stated = "As a vegan, I only buy vegan, cruelty-free products."
    reviews = [f"{stated} This toner is gentle on dry skin.", f"{stated} The serum works on dry skin.",
               f"{stated}  The cream feels light.", "I bought this as a gift."]
    summary = ExtractiveSummariser(max_sentences=2).summarise(reviews)
    assert summary.count("vegan, cruelty-free") == 1           # the most central sentence, said once
    assert summary.startswith(stated)
    assert "dry skin" in summary                                  # the next most central, not a repeat
    assert ExtractiveSummariser(max_sentences=3).summarise([stated, stated.upper()]) == stated
