"""How prompts are sized: candidates, history items, title and prompt lengths (counted in model tokens)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ulmrec_align.prompts.answers.registry import ANSWERS, AnswerName
from ulmrec_align.prompts.letters import MAX_LETTERS

#: How next_item is answered (``PromptConfig.answer``, ``align build --answer``, ``align rank --answer``): the
#: registered answer kinds (:mod:`ulmrec_align.prompts.answers.registry`).
AnswerKind = AnswerName


class PromptConfig(BaseModel):
    """Sizes of a prompt; paper defaults (20 candidates, 20 history items, 32-token titles, 1536 tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_candidates: int = Field(default=20, ge=2, le=MAX_LETTERS,
                              description="Lettered candidates per ranking prompt, (A), (B), ...")
    history_items: int = Field(
        default=20, ge=0, description="Most recent history titles shown, in time order. 0 (relevance "
        "answers only): no history line, so the LLM judges each candidate from the user's code or text alone "
        "and the sequence is left to the retriever it is fused with.")
    title_tokens: int = Field(default=32, ge=1, description="Each title is cut to this many model tokens.")
    strip_sizes: bool = Field(
        default=False, description="Size and pack strings (', 6.7 fl oz', 'Pack of 3', '(2 Count)') are "
        "removed from every title before it is cut (ulmrec_align.prompts.sizes).")
    max_prompt_tokens: int = Field(
        default=1536, ge=64, description="A prompt longer than this drops its oldest history items first "
        "(then cuts the preference or intent text); counted in tokens of the chosen model.")
    text_tokens: int = Field(default=96, ge=8,
                             description="Preference, review and intent texts are cut to this many tokens.")
    answer: AnswerKind = Field(
        default="letter", description="How next_item is answered and ranked. " + " ".join(
            f"'{a.name}': {a.description}" for a in ANSWERS.values()))
    user_text: bool = Field(
        default=False, description="The next_item prompt shows the user's preference text in plain words "
        "(a 'Preferences:' line: the data's preference, else the extractive summary of the training reviews, "
        "cut to text_tokens) -- what a user index is built from. A diagnostic: with no index it measures "
        "what a perfect reading of the index could add at the same training budget.")

    @model_validator(mode="after")
    def _history_needed(self) -> PromptConfig:
        if self.history_items == 0 and self.answer != "relevance":
            raise ValueError(f"history_items = 0 (no history in the prompt) needs relevance answers, not "
                             f"{self.answer!r}: a letter or title answer is chosen from the history")
        return self
