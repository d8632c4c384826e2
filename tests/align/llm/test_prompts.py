"""Prompts: letter ids come from the training target; user text never becomes code tokens; sizes in tokens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_fixtures import metaspace_tokenizer

from ulmrec_align.models.testing import tiny_tokenizer
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import (
    IGNORE_INDEX,
    encode_prompt,
    encode_sample,
    letter_token_ids,
)
from ulmrec_align.prompts.index_tokens import add_index_tokens, code_vocabulary
from ulmrec_align.prompts.letters import LETTERS
from ulmrec_align.prompts.render import alpaca_prompt
from ulmrec_align.tasks.schema import AlignmentSample

TOKENIZERS = {"gpt2-style": tiny_tokenizer, "llama-style": metaspace_tokenizer}


def _sample(prompt: str, response: str, spans: list[tuple[int, int]] | None = None) -> AlignmentSample:
    return AlignmentSample(task="next_item", split="train", user_id=0, raw_user_id="u",
                           template_id="next_item/0", prompt=prompt, response=response,
                           prompt_code_spans=spans or [])


@pytest.mark.parametrize("kind", list(TOKENIZERS))
def test_letter_ids_are_the_first_ids_the_training_target_teaches(kind: str) -> None:
    tokenizer: Any = TOKENIZERS[kind]()
    prompt = alpaca_prompt("Pick one.", ["Candidate pool: (A) x (B) y (C) z"], user_code="<a_1><b_2>")
    letters = letter_token_ids(tokenizer, 20)
    assert len(set(letters)) == 20
    for position in (0, 1, 7, 19):
        encoded = encode_sample(tokenizer, _sample(prompt.text, LETTERS[position]))
        assert encoded.labels[: encoded.prompt_length] == [IGNORE_INDEX] * encoded.prompt_length
        assert encoded.labels[encoded.prompt_length] == letters[position]
        assert encoded.input_ids[-1] == tokenizer.eos_token_id
        assert encoded.input_ids[: encoded.prompt_length] == encode_prompt(tokenizer, prompt.text)


def test_llama_style_letter_id_is_not_the_id_after_a_newline_in_joint_text() -> None:
    """The LlamaRec pitfall: in joint text, the letter after "\\n" is another token than the target's."""
    tokenizer: Any = metaspace_tokenizer()
    target_id = letter_token_ids(tokenizer, 1)[0]
    joint = tokenizer("### Response:\nA", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(target_id) == "▁A"
    assert joint[-1] != target_id


def test_user_text_that_looks_like_a_code_stays_ordinary_text() -> None:
    tokenizer: Any = tiny_tokenizer()
    new_ids = add_index_tokens(tokenizer, ["<a_{}>", "<b_{}>"], [16, 16])
    assert len(set(new_ids)) == len(new_ids) == 32
    review = "Great cream <a_12><b_3> would buy again"
    prompt = alpaca_prompt("Describe.", [f"Review: {review}"], user_code="<a_12><b_3>")
    ids = encode_prompt(tokenizer, prompt.text, prompt.spans, index_tokens="added")
    code_ids = [i for i in ids if i in set(new_ids)]
    a12, b3 = tokenizer.convert_tokens_to_ids(["<a_12>", "<b_3>"])
    assert code_ids == [a12, b3], "only the marked User Index span may become code tokens"
    review_ids = tokenizer(review, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert not set(review_ids) & set(new_ids)
    # the plain tokenizer call (no spans) would have turned the review's text into code tokens
    naive = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    assert sum(i in set(new_ids) for i in naive) == 4


def test_added_tokens_are_idempotent_and_ordered() -> None:
    tokenizer: Any = tiny_tokenizer()
    first = add_index_tokens(tokenizer, ["<a_{}>", "<b_{}>"], [4, 3])
    again = add_index_tokens(tokenizer, ["<a_{}>", "<b_{}>"], [4, 3])
    assert first == again
    assert tokenizer.convert_ids_to_tokens(first) == code_vocabulary(["<a_{}>", "<b_{}>"], [4, 3])


def test_prompt_fits_by_dropping_the_oldest_history_first() -> None:
    tokenizer: Any = tiny_tokenizer()
    titles = [f"Item number {i} with a fairly long descriptive product title" for i in range(30)]
    roomy = PromptBuilder(tokenizer, PromptConfig(max_prompt_tokens=4096), titles=titles)
    full = roomy.render("Pick.", user_code=None, history=list(range(25)), candidates=[0, 1, 2])
    assert full.history_shown == 20                              # history_items
    tight_config = PromptConfig(max_prompt_tokens=full.n_tokens // 2)
    tight = PromptBuilder(tokenizer, tight_config, titles=titles)
    cut = tight.render("Pick.", user_code=None, history=list(range(25)), candidates=[0, 1, 2])
    assert cut.n_tokens <= tight_config.max_prompt_tokens
    assert 1 <= cut.history_shown < 20
    assert "Item number 24 " in cut.text                          # the newest item stays
    assert "Item number 5 " not in cut.text                       # the oldest went first


def test_titles_are_cut_in_model_tokens() -> None:
    tokenizer: Any = tiny_tokenizer()
    builder = PromptBuilder(tokenizer, PromptConfig(title_tokens=4), titles=["a very long title " * 10])
    short = builder.title(0)
    assert len(tokenizer(short, add_special_tokens=False)["input_ids"]) <= 4
    assert "a very long title".startswith(short.strip()[:5])


@pytest.mark.parametrize(("title", "stripped"), [
    ("Derma Clarity Vegan Gentle Toner, 6.7 fl oz", "Derma Clarity Vegan Gentle Toner"),
    ("Aquage Beyond Shine Spray, 5 Ounce", "Aquage Beyond Shine Spray"),
    ("Stamping Plates Case - Pack of 3 In Different Colors", "Stamping Plates Case In Different Colors"),
    ("Soap Bar, Lemongrass, 4-Ounce Bars, 8 Count (Pack of 2)", "Soap Bar, Lemongrass"),
    ("Eyelash Adhesive Remover 59ml/2oz", "Eyelash Adhesive Remover"),
    ("Neutrogena Healthy Skin Primer SPF 15, 1 Ounce", "Neutrogena Healthy Skin Primer SPF 15"),
    ("It's A 10 Miracle Finishing Spray", "It's A 10 Miracle Finishing Spray"),   # a number is not a size
    ("100 ct", "100 ct"),                                                         # never left empty
])
def test_size_and_pack_strings_leave_the_title(title: str, stripped: str) -> None:
    from ulmrec_align.prompts.sizes import strip_sizes

    assert strip_sizes(title) == stripped
    assert strip_sizes(stripped) == stripped


def test_the_builder_strips_sizes_only_when_asked() -> None:
    tokenizer: Any = tiny_tokenizer()
    titles = ["Silk Theory Organic Hair Oil, 12 fl oz"]
    kept = PromptBuilder(tokenizer, PromptConfig(title_tokens=64), titles=titles)
    stripped = PromptBuilder(tokenizer, PromptConfig(title_tokens=64, strip_sizes=True), titles=titles)
    assert kept.title(0) == titles[0]
    assert stripped.title(0) == "Silk Theory Organic Hair Oil"
    history = stripped.render("Rank.", user_code=None, history=[0]).text
    assert "Hair Oil" in history
    assert "fl oz" not in history
