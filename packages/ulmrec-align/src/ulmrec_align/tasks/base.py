"""What a task builder sees (:class:`BuildContext`) and the protocol it follows (:class:`TaskBuilder`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.data.split import UserSplit
from ulmrec_align.prompts.builder import PromptBuilder, Rendered
from ulmrec_align.prompts.letters import letter
from ulmrec_align.prompts.templates import TEMPLATES, preference_line, template_id
from ulmrec_align.retrieval.candidates import CandidateRow
from ulmrec_align.tasks.schema import AlignConfig, AlignmentSample, SampleSplit
from ulmrec_align.tasks.summarise import Summariser, training_preference


def preference_text(dataset: PreparedDataset, user: int, prompts: PromptBuilder,
                    summariser: Summariser) -> str | None:
    """User ``user``'s preference text (:func:`training_preference`) cut to ``text_tokens``: what the
    preference tasks and ``--user-text`` prompts show, in ``align build`` and ``align rank`` alike."""
    text = training_preference(dataset, user, summariser)
    return prompts.cut(text, prompts.config.text_tokens) if text else None


@dataclass
class BuildContext:
    """Everything the builders share: data, user codes (None = no index), candidates, prompt builder."""

    dataset: PreparedDataset
    config: AlignConfig
    prompts: PromptBuilder
    codes: dict[int, str] | None                      # dense user id -> code text, e.g. '<a_1><b_2>'
    candidates: dict[tuple[str, int], CandidateRow]    # (split, dense user id) -> retrieved candidates
    summariser: Summariser
    #: (dense user id, prefix length) -> the retriever's best items for that training prefix, best first
    hard_negatives: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    #: (dense user id, prefix length) -> the retriever's scores of those items and of the prefix's target
    prefix_scores: dict[tuple[int, int], dict[int, float]] = field(default_factory=dict)
    _preferences: dict[int, str | None] = field(default_factory=dict)

    def split(self, user: int) -> UserSplit:
        return self.dataset.splits[user]

    def code(self, user: int) -> str | None:
        return None if self.codes is None else self.codes[user]

    def preference(self, user: int) -> str | None:
        """The data's preference sentence, else the summariser's text of the user's training reviews."""
        if user not in self._preferences:
            self._preferences[user] = preference_text(self.dataset, user, self.prompts, self.summariser)
        return self._preferences[user]

    def user_lines(self, user: int) -> list[str]:
        """Input lines before the history that describe the user in words: the preference line when the
        prompts show it (``prompt.user_text``) and the user has one, else none."""
        text = self.preference(user) if self.config.prompt.user_text else None
        return [preference_line(text)] if text else []

    def sample(self, *, task: str, split: SampleSplit, user: int, template: int, rendered: Rendered,
               response: str, response_is_code: bool = False, candidates: Sequence[int] | None = None,
               target: int | None = None, choices: Sequence[str] | None = None,
               retriever_scores: Sequence[float] | None = None) -> AlignmentSample:
        """An :class:`AlignmentSample` of ``rendered`` + ``response``; ``choices`` (title answers) means the
        candidates are not lettered (no ``target_letter``)."""
        target_letter = None
        if candidates is not None and target is not None and choices is None:
            target_letter = letter(list(candidates).index(target))
        return AlignmentSample(
            task=task, split=split, user_id=user, raw_user_id=self.dataset.users[user].raw_id,
            template_id=template_id(task, template), prompt=rendered.text, response=response,
            prompt_code_spans=rendered.spans,
            response_code_spans=[(0, len(response))] if response_is_code else [],
            candidates=list(candidates) if candidates is not None else None,
            target=target, target_letter=target_letter,
            choices=list(choices) if choices is not None else None,
            retriever_scores=list(retriever_scores) if retriever_scores is not None else None)


class TaskBuilder(Protocol):
    """One alignment task. ``build`` returns the samples of one user (possibly none)."""

    name: ClassVar[str]
    needs_index: ClassVar[bool]
    splits: ClassVar[tuple[SampleSplit, ...]]

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        """Why the data cannot support this task (None = it can)."""
        ...

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        ...


def pick_template(task: str, rng: random.Random,
                  templates: Sequence[str] | None = None) -> tuple[int, str]:
    """A paraphrase of ``task``'s instruction (or of ``templates``), chosen by ``rng``:
    ``(number, instruction)``."""
    options = TEMPLATES[task] if templates is None else templates
    number = rng.randrange(len(options))
    return number, options[number]
