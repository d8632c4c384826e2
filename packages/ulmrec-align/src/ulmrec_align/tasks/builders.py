"""The six built-in alignment tasks (ULMRec §3.3): each turns one user's *training* interactions (or, for
``next_item`` validation, the validation target with the retriever's candidates) into samples.

1. ``next_item``        index + history + lettered candidates → the target's letter (or, with
                          ``answer = "title"``, index + history → the target's title)
2. ``index_to_pref``    index → preference text
3. ``pref_to_index``    preference text → index
4. ``history_to_index`` history → index
5. ``rating``           index + item title → rating 1–5 (data with ratings)
6. ``intent``           index + an intent from the target interaction's own review/summary → its letter
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import ClassVar

from ulmrec_align.prompts.templates import preference_line, prompt_instructions
from ulmrec_align.tasks.base import BuildContext, pick_template
from ulmrec_align.tasks.schema import AlignmentSample, SampleSplit


def sample_negatives(ctx: BuildContext, *, exclude: set[int], n: int, rng: random.Random,
                     preferred: Sequence[int] = ()) -> list[int]:
    """``n`` distinct items not in ``exclude`` (fewer when the catalogue has fewer): ``preferred`` first
    (in order), then uniformly at random."""
    out: list[int] = []
    taken = set(exclude)
    for item in preferred:
        if len(out) == n:
            return out
        if item not in taken:
            out.append(item)
            taken.add(item)
    n_items = ctx.dataset.n_items
    n = min(n, len(out) + n_items - len(taken))       # a tiny catalogue: as many negatives as there are
    while len(out) < n:
        item = rng.randrange(n_items)
        if item not in taken:
            out.append(item)
            taken.add(item)
    return out


def lettered_pool(ctx: BuildContext, target: int, history: Sequence[int], rng: random.Random, *,
                  preferred: Sequence[int] = ()) -> list[int]:
    """Target + ``n_candidates - 1`` negatives never in ``history``, shuffled."""
    n = ctx.config.prompt.n_candidates
    pool = [target, *sample_negatives(ctx, exclude={target, *history}, n=n - 1, rng=rng,
                                      preferred=preferred)]
    rng.shuffle(pool)
    return pool


def retriever_pool(ctx: BuildContext, target: int, history: Sequence[int], ranked: Sequence[int],
                   rng: random.Random) -> list[int]:
    """The retriever's top ``n_candidates`` for a training prefix, in its order, target included: ``ranked``
    (its best items for the prefix, history masked) cut to ``n``; when the target is not among them it takes
    the last place. Random negatives fill a catalogue or list that runs short."""
    n = ctx.config.prompt.n_candidates
    pool = [i for i in ranked if i not in history][:n]
    if target not in pool:
        pool = [*pool[: n - 1], target]
    if len(pool) < n:
        pool += sample_negatives(ctx, exclude={*pool, *history}, n=n - len(pool), rng=rng)
    return pool


def training_prefixes(train: Sequence[int], *, mode: str, cap: int | None) -> list[int]:
    """Prefix lengths ``t`` whose sample predicts ``train[t]`` from ``train[:t]`` (``t >= 1``): every one
    (``all``, the latest ``cap``) or only the last (``last``), oldest first.

    >>> training_prefixes([5, 6, 7, 8], mode="all", cap=2)
    [2, 3]
    """
    lengths = list(range(1, len(train)))
    if mode == "last":
        return lengths[-1:]
    return lengths if cap is None else lengths[-cap:]


class NextItem:
    """Task 1. Training: one sample per prefix of the training sequence (``prefixes``), with random
    negatives or the retriever's best items for that prefix (``negatives``), shuffled. Validation: the
    retriever's candidates for the validation target, **shuffled** (seeded; ``valid_order``), so that model
    selection rewards neither a letter preference nor the retriever's order, or in the retriever's order (as
    LlamaRec); users whose target the retriever missed are left out (they measure nothing).

    With ``answer = "relevance"`` the training pool is the retriever's top n for the prefix in its order,
    target included (``negatives = "retriever"``, :func:`retriever_pool`), with the retriever's scores of
    it on that prefix (``retriever_scores``; ``align train --retriever-prior``), and validation keeps the
    retriever's order and scores (``retriever_scores``) so that it ranks fused, as the test does.

    With ``answer = "title"`` the prompt lists no candidates and the response is the target's title; every
    sample keeps its pool (the same negatives) and their titles as ``choices``: the token loss ignores them,
    ``--loss choices`` trains on them (a cross-entropy over the choices' likelihoods), validation ranks by
    them."""

    name: ClassVar[str] = "next_item"
    needs_index: ClassVar[bool] = False
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train", "valid")

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        return None

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        s = ctx.split(user)
        answer = ctx.config.prompt.answer
        templates = prompt_instructions(ctx.config.prompt)
        if split != "train":
            row = ctx.candidates.get(("valid", user))
            if row is None or not row.target_in_candidates:
                return []
            history, target = list(s.valid_input), s.valid_target
            pool = list(row.candidates[: ctx.config.prompt.n_candidates])
            if target not in pool:
                return []
            if answer == "relevance":   # the retriever's order and scores: validated fused, as tested
                return [self._sample(ctx, user, split, (0, templates[0]), history, pool, target,
                                     retriever_scores=row.scores[: len(pool)])]
            if ctx.config.valid_order == "shuffled":
                rng.shuffle(pool)
            return [self._sample(ctx, user, split, (0, templates[0]), history, pool, target)]
        out = []
        for length in training_prefixes(s.train, mode=ctx.config.prefixes, cap=ctx.config.max_prefixes):
            history, target = list(s.train[:length]), s.train[length]
            template = pick_template(self.name, rng, templates)
            ranked = ctx.hard_negatives.get((user, length), ())
            scores: list[float] | None = None
            if answer == "relevance" and ranked:
                pool = retriever_pool(ctx, target, history, ranked, rng)
                known = ctx.prefix_scores.get((user, length), {})
                scores = [known[i] for i in pool] if all(i in known for i in pool) else None
            else:
                pool = lettered_pool(ctx, target, history, rng, preferred=ranked)
            out.append(self._sample(ctx, user, split, template, history, pool, target,
                                    retriever_scores=scores))
        return out

    def _sample(self, ctx: BuildContext, user: int, split: SampleSplit, template: tuple[int, str],
                history: list[int], pool: list[int] | None, target: int, *,
                retriever_scores: Sequence[float] | None = None) -> AlignmentSample:
        number, instruction = template
        if ctx.config.prompt.answer in ("title", "relevance"):
            rendered = ctx.prompts.render(instruction, user_code=ctx.code(user), history=history,
                                          before=ctx.user_lines(user))
            choices = None if pool is None else [ctx.prompts.title(i) for i in pool]
            response = ctx.prompts.title(target) if ctx.config.prompt.answer == "title" else "Yes"
            return ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                              response=response, candidates=pool, target=target, choices=choices,
                              retriever_scores=retriever_scores)
        assert pool is not None
        rendered = ctx.prompts.render(instruction, user_code=ctx.code(user), history=history, candidates=pool,
                                      before=ctx.user_lines(user))
        return ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                          response=pool_letter(pool, target), candidates=pool, target=target)


def pool_letter(pool: Sequence[int], target: int) -> str:
    from ulmrec_align.prompts.letters import letter

    return letter(list(pool).index(target))


def has_preference_source(ctx: BuildContext) -> bool:
    """Whether any user has a preference, review or user text to write a preference text from."""
    if any(u.preference for u in ctx.dataset.users) or any(u.texts for u in ctx.dataset.users):
        return True
    return any(seq.reviews or seq.summaries for seq in ctx.dataset.sequences)


class _PreferenceTask:
    """Shared by tasks 2 and 3: they need an index and some preference source."""

    needs_index: ClassVar[bool] = True
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train",)

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        return None if has_preference_source(ctx) else "the data has no preference, review or user texts"


class IndexToPreference(_PreferenceTask):
    """Task 2."""

    name: ClassVar[str] = "index_to_pref"

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        preference = ctx.preference(user)
        if not preference:
            return []
        number, instruction = pick_template(self.name, rng)
        rendered = ctx.prompts.render(instruction, user_code=ctx.code(user))
        return [ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                           response=preference)]


class PreferenceToIndex(_PreferenceTask):
    """Task 3: the index is the answer, so the prompt has no ``User Index:`` line."""

    name: ClassVar[str] = "pref_to_index"
    #: validation samples measure whether the model writes the code (exact match while tuning)
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train", "valid")

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        preference, code = ctx.preference(user), ctx.code(user)
        if not preference or code is None:
            return []
        number, instruction = pick_template(self.name, rng)
        rendered = ctx.prompts.render(instruction, user_code=None, before=[preference_line(preference)])
        return [ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                           response=code, response_is_code=True)]


class HistoryToIndex:
    """Task 4: the training history identifies the user."""

    name: ClassVar[str] = "history_to_index"
    needs_index: ClassVar[bool] = True
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train", "valid")

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        if ctx.config.prompt.history_items == 0:
            return "prompts show no history (history_items = 0)"
        return None

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        code = ctx.code(user)
        if code is None:
            return []
        number, instruction = pick_template(self.name, rng)
        rendered = ctx.prompts.render(instruction, user_code=None, history=list(ctx.split(user).train),
                                      history_label="Purchase history")
        return [ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                           response=code, response_is_code=True)]


class RatingPrediction:
    """Task 5: a random training interaction's rating, rounded to 1–5."""

    name: ClassVar[str] = "rating"
    needs_index: ClassVar[bool] = True
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train",)

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        if not ctx.dataset.manifest.has_ratings:
            return "the data has no ratings (e.g. the RecBole Beauty release keeps none)"
        return None

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        ratings = ctx.dataset.sequences[user].ratings
        train = ctx.split(user).train
        if not ratings or not train:
            return []
        position = rng.randrange(len(train))
        stars = min(5, max(1, round(ratings[position])))
        number, instruction = pick_template(self.name, rng)
        rendered = ctx.prompts.render(instruction, user_code=ctx.code(user),
                                      before=[f"Item: {ctx.prompts.title(train[position])}"])
        return [ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                           response=str(stars))]


_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def without_title_words(text: str, title: str) -> str:
    """``text`` with every word of ``title`` (3+ letters, any case) removed, so that an intent written from a
    review cannot be answered by matching the target's title word for word.

    >>> without_title_words("I love this Silk Theory shampoo, so soft.", "Silk Theory Moisturizing Shampoo")
    'I love this, so soft.'
    """
    banned = {w.lower() for w in _WORD.findall(title) if len(w) >= 3}
    kept = _WORD.sub(lambda m: "" if m.group(0).lower() in banned else m.group(0), text)
    kept = re.sub(r"\s+([,.!?;:])", r"\1", kept)
    return re.sub(r"\s{2,}", " ", kept).strip()


class IntentPrediction:
    """Task 6: the latest training interaction that has a review or summary; the intent is the review's first
    sentence (or the summary) without the words of the item's own title (no copy task), phrased as a request;
    candidates are drawn as in ``next_item``."""

    name: ClassVar[str] = "intent"
    needs_index: ClassVar[bool] = True
    splits: ClassVar[tuple[SampleSplit, ...]] = ("train",)

    def unsupported_reason(self, ctx: BuildContext) -> str | None:
        if not any(seq.reviews or seq.summaries for seq in ctx.dataset.sequences):
            return "the data has no per-interaction review text or summary (e.g. the RecBole Beauty release)"
        return None

    def build(self, ctx: BuildContext, user: int, split: SampleSplit,
              rng: random.Random) -> list[AlignmentSample]:
        seq, train = ctx.dataset.sequences[user], ctx.split(user).train
        for position in range(len(train) - 1, -1, -1):
            summary = seq.summaries[position] if seq.summaries else None
            review = seq.reviews[position] if seq.reviews else None
            text = (_FIRST_SENTENCE.split(review)[0] if review else None) or summary
            if text:
                break
        else:
            return []
        target = train[position]
        text = without_title_words(text, ctx.dataset.items[target].title)
        if not _WORD.search(text):
            return []
        intent = ctx.prompts.cut(f"I am looking for something that fits this: {text}",
                                 ctx.config.prompt.text_tokens)
        pool = lettered_pool(ctx, target, train[:position], rng)
        number, instruction = pick_template(self.name, rng)
        rendered = ctx.prompts.render(instruction, user_code=ctx.code(user), candidates=pool,
                                      before=[f"Request: {intent}"])
        return [ctx.sample(task=self.name, split=split, user=user, template=number, rendered=rendered,
                           response=pool_letter(pool, target), candidates=pool, target=target)]
