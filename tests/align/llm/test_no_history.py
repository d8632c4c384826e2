"""Prompts without the history (``history_items = 0``, relevance answers only): the user is known by their
code or text alone, training, validation and ``align rank`` render the same prompts, and the options that
need a history refuse or skip it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import Pipeline, ulmrec
from support.cli import run_ulmrec

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.templates import NEXT_RELEVANCE_USER_TEMPLATES
from ulmrec_align.ranking.loading import load_ranking_model
from ulmrec_align.ranking.ranker import ranking_prompts
from ulmrec_align.retrieval.candidates import read_candidates
from ulmrec_align.tasks.build import user_codes
from ulmrec_align.tasks.schema import read_manifest, read_samples
from ulmrec_index.artifact import load_index

PROMPT = PromptConfig(n_candidates=8, history_items=0, title_tokens=8, answer="relevance", user_text=True)


def test_prompts_without_history_show_the_user_alone_and_rank_as_validated(pipeline: Pipeline, tiny_llm: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "A"
    ulmrec("align", "build", "--data", pipeline.data, "--out", out, "--index", pipeline.index,
           "--candidates", pipeline.candidates, "--model", tiny_llm, "--tasks", "next_item,history_to_index",
           "--answer", "relevance", "--retriever", pipeline.root / "retrieve", "--user-text",
           "--n-candidates", "8", "--history-items", "0", "--title-tokens", "8", "--no-progress")
    manifest = read_manifest(out)
    assert manifest.config.prompt.history_items == 0
    assert "no history" in manifest.skipped["history_to_index"]       # a code from a history it cannot show
    train = read_samples(out, "train")
    assert train
    assert {s.task for s in train} == {"next_item"}
    for s in train:
        assert "history" not in s.prompt.lower()
        assert "Preferences:" in s.prompt
        assert any(t in s.prompt for t in NEXT_RELEVANCE_USER_TEMPLATES)
        assert s.choices
        assert len(s.choices) == 8
    # the ranker renders, for the same users, exactly the prompts validation scored
    dataset = PreparedDataset.load(pipeline.data)
    ranker = load_ranking_model(tiny_llm, prompt=PROMPT)
    builder = PromptBuilder(ranker.tokenizer, PROMPT, titles=dataset.titles())
    valid = {s.user_id: s for s in read_samples(out, "valid")}
    rows = [r for (split, user), r in read_candidates(pipeline.candidates).items()
            if split == "valid" and user in valid]
    assert rows
    codes = user_codes(dataset, load_index(pipeline.index))
    prompts = ranking_prompts(dataset, rows, builder, codes=codes)
    for prompt in prompts:
        assert prompt.rendered.history_shown == 0
        assert prompt.rendered.text == valid[prompt.row.user_id].prompt


def test_no_history_needs_relevance_answers(pipeline: Pipeline, tiny_llm: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs relevance answers"):
        PromptConfig(history_items=0, answer="title")
    refused = run_ulmrec("align", "build", "--data", pipeline.data, "--out", tmp_path / "A",
                         "--candidates", pipeline.candidates, "--model", tiny_llm, "--tasks", "next_item",
                         "--answer", "title", "--history-items", "0", "--no-progress", check=False)
    assert refused.returncode != 0
    assert "needs relevance answers" in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("ulmrec: error: history_items = 0"), line  # the sentence, no "--: Value error, "
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "A").exists()
