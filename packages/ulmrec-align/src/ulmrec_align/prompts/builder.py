"""Render the prompts of every task for one tokenizer: titles and texts cut in tokens, prompts fitted to
``max_prompt_tokens`` by dropping the oldest history items first (then shortening the free text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.prompts.encoding import encode_prompt
from ulmrec_align.prompts.index_tokens import IndexTokens
from ulmrec_align.prompts.render import SpannedText, alpaca_prompt, lettered, numbered
from ulmrec_align.prompts.sizes import strip_sizes


@dataclass(frozen=True)
class Rendered:
    """A prompt's text, its user-code spans and its length in tokens."""

    text: str
    spans: list[tuple[int, int]]
    n_tokens: int
    history_shown: int


class PromptBuilder:
    """Builds prompts with one tokenizer and one :class:`PromptConfig` (titles cut once, then cached)."""

    def __init__(self, tokenizer: Any, config: PromptConfig, *, titles: Sequence[str],
                 index_tokens: IndexTokens = "plain") -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.index_tokens: IndexTokens = index_tokens
        self._raw_titles = list(titles)
        self._titles: dict[int, str] = {}

    def cut(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` model tokens (whole text when short enough)."""
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if len(ids) <= max_tokens:
            return text
        return str(self.tokenizer.decode(ids[:max_tokens], skip_special_tokens=False)).strip()

    def title(self, item: int) -> str:
        """Item ``item``'s title (its size and pack strings removed with ``strip_sizes``) cut to
        ``title_tokens``."""
        if item not in self._titles:
            raw = self._raw_titles[item]
            self._titles[item] = self.cut(strip_sizes(raw) if self.config.strip_sizes else raw,
                                          self.config.title_tokens)
        return self._titles[item]

    def count(self, prompt: SpannedText) -> int:
        """Tokens the model reads for ``prompt``."""
        return self.count_text(prompt.text, prompt.spans)

    def count_text(self, text: str, spans: Sequence[tuple[int, int]] = ()) -> int:
        return len(encode_prompt(self.tokenizer, text, spans, index_tokens=self.index_tokens))

    def render(self, instruction: str, *, user_code: str | None, history: Sequence[int] = (),
               candidates: Sequence[int] | None = None, before: Sequence[str] = (),
               after: Sequence[str] = (), history_label: str = "User history") -> Rendered:
        """Render ``instruction`` + input lines: ``before``, the history, the candidates, ``after``.

        History shows the last ``history_items`` titles, oldest first (none at 0); while the prompt is longer
        than ``max_prompt_tokens`` the oldest shown item is dropped; if it is still too long with one item
        left, the free-text lines (``before``/``after``) are cut to half their tokens, then it is returned as
        is.
        """
        n_items = self.config.history_items
        shown = list(history)[-n_items:] if history and n_items > 0 else []
        free = list(before) + list(after)
        while True:
            lines = list(free[: len(before)])
            if shown:
                lines.append(f"{history_label}: {numbered([self.title(i) for i in shown])}")
            if candidates is not None:
                lines.append(f"Candidate pool: {lettered([self.title(i) for i in candidates])}")
            lines += free[len(before):]
            prompt = alpaca_prompt(instruction, lines, user_code=user_code)
            n_tokens = self.count(prompt)
            if n_tokens <= self.config.max_prompt_tokens:
                break
            if len(shown) > 1:
                shown = shown[1:]
                continue
            longest = max(range(len(free)), key=lambda i: len(free[i]), default=None)
            if longest is None or len(free[longest]) < 16:
                break
            shorter = self.cut(free[longest], max(4, len(free[longest].split()) // 2))
            if shorter == free[longest]:
                break
            free[longest] = shorter
        return Rendered(text=prompt.text, spans=prompt.spans, n_tokens=n_tokens, history_shown=len(shown))
