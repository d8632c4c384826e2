"""``Recommender``: a tuned LLM ranker for use from other code.

    rec = Recommender.load("runs/beauty/train", data="runs/beauty/data", index="runs/beauty/index",
                           retriever="runs/beauty/retrieve")
    rec.recommend(user_id="A1GNYV0RA0EQSS", k=10)           # a known user: their whole sequence + code
    rec.recommend(history=["B00AAA", "B00BBB"], candidates=[...], k=5)   # anyone, any pool

Pools: without ``candidates`` the retriever proposes the prompt's ``n_candidates`` (20 by default), history
masked; duplicates in a given pool are ranked once. A pool larger than the prompt's letters (``N > n``) is
ranked in ``R = max(3, permutations)`` **rounds**; each round deals the pool, in an order that depends only
on the round and the set of items (never on the order it was given in), into ``ceil(N / n)`` chunks whose
sizes differ by at most one (no lone item), and a candidate's round score is its letter log-probability
within its chunk plus ``log(chunk size)`` (0 for a model with no preference, whatever the chunk size). Its
score is the mean over rounds, so every candidate is compared with different companions and the result is
the same for any order or rotation of the pool.

The tuned model's letter prior is removed from its letter log-probabilities (``calibrate=False``: raw
logits), as ``align rank --calibration prior`` does.

A model tuned to answer by relevance (``answer = "relevance"``) scores every candidate of the pool by the
log-odds of " Yes" after the prompt, read once, and the candidate's continuation (no chunks or letters).

A model tuned to answer with titles (``answer = "title"``) scores every candidate of the pool, whatever its
size, by the log-likelihood of its title after one prompt without candidates (no chunks, rounds or letters),
minus the title's prior (``calibrate``; :func:`ulmrec_align.ranking.ranker.title_priors`).

``permutations = K > 1`` prompts every chunk in K letter orders and averages each candidate's letter
log-probability (see :mod:`ulmrec_align.ranking.ranker`), against the model's letter bias, at K× the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ulmrec_align.data.prepared import PreparedDataset
from ulmrec_align.prompts.builder import PromptBuilder
from ulmrec_align.prompts.encoding import candidate_ids, encode_prompt, letter_token_ids, relevance_token_ids
from ulmrec_align.prompts.templates import TEMPLATES, next_item_templates, prompt_instructions
from ulmrec_align.ranking.ranker import (
    RankingModel,
    calibrate_letters,
    letter_orders,
    merge_letter_orders,
    title_log_likelihoods,
    title_priors,
    without_prior,
)
from ulmrec_align.ranking.scorer import last_logits, relevance_scores
from ulmrec_eval.runtime.errors import InputError
from ulmrec_index.artifact import IndexArtifact, load_index


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: dense id, source id, title and score (higher is better)."""

    item_id: int
    raw_id: str
    title: str
    score: float


class Recommender:
    """Rank candidates for a user with a tuned LLM (see the module docstring)."""

    def __init__(self, ranker: RankingModel, dataset: PreparedDataset, *, index: IndexArtifact | None = None,
                 retriever: Any | None = None, batch_size: int = 8, permutations: int = 1,
                 calibrate: bool = True) -> None:
        if permutations < 1:
            raise InputError(f"permutations must be at least 1, got {permutations}")
        if ranker.prompt.user_text:
            raise InputError("this model was tuned with the user's preference text in its prompts (align "
                             "build --user-text, a diagnostic control); rank it with `ulmrec align rank`")
        self.ranker = ranker
        self.permutations = permutations
        self.calibrate = calibrate
        self._title_prior: dict[str, float] = {}   # title -> log p(title | content-free prompt), cached
        self.dataset = dataset
        self.index = index
        self.retriever = retriever
        self.batch_size = batch_size
        self._prompts = PromptBuilder(ranker.tokenizer, ranker.prompt, titles=dataset.titles(),
                                      index_tokens=ranker.index_tokens if index is not None else "plain")
        self._user = {u.raw_id: u.user_id for u in dataset.users}
        self._item = {it.raw_id: it.item_id for it in dataset.items}

    @classmethod
    def load(cls, model: str | Path, *, data: str | Path, index: str | Path | None = None,
             retriever: str | Path | None = None, device: str = "cpu", permutations: int = 1,
             any_index: bool = False) -> Recommender:
        """Load the tuned model, the prepared dataset (titles, histories), the index and the retriever.

        The index must be the one the model was tuned with (its ``index.json`` hash; no index for a model
        tuned without one) unless ``any_index``."""
        from ulmrec_align.ranking.loading import load_ranking_model
        from ulmrec_eval.runtime.artifacts import sha256_file
        from ulmrec_index.artifact import INDEX_FILE

        ranker = load_ranking_model(model, device=device)
        dataset = PreparedDataset.load(data)
        artifact = load_index(index) if index is not None else None
        if index is not None:
            file = Path(index) / INDEX_FILE if Path(index).is_dir() else Path(index)
            given = sha256_file(file)
        else:
            given = None
        if ranker.tuned and not any_index and given != ranker.index_sha256:
            raise InputError("the model was tuned with another user index (or none) than the one given; "
                             "pass the index it was tuned with, or any_index=True", path=model)
        loaded = None
        if retriever is not None:
            from ulmrec_align.retrieval.api import load_retriever

            loaded = load_retriever(retriever, device=device)[0]
        return cls(ranker, dataset, index=artifact, retriever=loaded, permutations=permutations)

    def _item_id(self, item: int | str) -> int:
        if isinstance(item, str):
            if item not in self._item:
                raise InputError(f"unknown item {item!r}")
            return self._item[item]
        if not 0 <= int(item) < self.dataset.n_items:
            raise InputError(f"item id {item} out of range [0, {self.dataset.n_items})")
        return int(item)

    def _user_id(self, user: int | str) -> int:
        if isinstance(user, str):
            if user not in self._user:
                raise InputError(f"unknown user {user!r}")
            return self._user[user]
        if not 0 <= int(user) < self.dataset.n_users:
            raise InputError(f"user id {user} out of range [0, {self.dataset.n_users})")
        return int(user)

    def recommend(self, *, user_id: int | str | None = None, history: Sequence[int | str] | None = None,
                  candidates: Sequence[int | str] | None = None, k: int = 10) -> list[Recommendation]:
        """The ``k`` best of ``candidates`` (or the retriever's) for a user or a history, best first."""
        if user_id is None and history is None:
            raise InputError("give user_id or history")
        user = None if user_id is None else self._user_id(user_id)
        items = ([self._item_id(i) for i in history] if history is not None
                 else list(self.dataset.sequences[user].items) if user is not None else [])
        code = None
        if self.index is not None and user is not None:
            raw = self.dataset.users[user].raw_id
            code = self.index.token(raw) if raw in self.index.codes else None
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        pool = ([self._item_id(i) for i in candidates] if candidates is not None
                else self._retrieve(items))
        pool = list(dict.fromkeys(pool))   # a duplicate is one candidate
        if not pool:
            return []
        scores = self._score(items, pool, code)
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:k]
        items_by_id = self.dataset.items
        return [Recommendation(item_id=pool[i], raw_id=items_by_id[pool[i]].raw_id,
                               title=items_by_id[pool[i]].title, score=float(scores[i])) for i in order]

    def _retrieve(self, history: list[int]) -> list[int]:
        if self.retriever is None:
            raise InputError("no candidates given and no retriever loaded (Recommender.load(retriever=...))")
        scores = self.retriever.score_histories([history])[0].clone()
        if history:
            scores[list(set(history))] = -float("inf")
        n = min(self.ranker.prompt.n_candidates, int(np.isfinite(scores.numpy()).sum()))
        return [int(i) for i in scores.topk(n).indices]

    def _score(self, history: list[int], pool: list[int], code: str | None) -> list[float]:
        if self.ranker.prompt.answer == "title":
            return self._title_scores(history, pool, code)
        if self.ranker.prompt.answer == "relevance":
            return self._relevance_scores(history, pool, code)
        n = self.ranker.prompt.n_candidates
        if len(pool) <= n:
            return self._chunk_scores(history, [pool], code, normalise=False)[0]
        canonical = sorted(pool)
        rounds = max(3, self.permutations)
        total = dict.fromkeys(pool, 0.0)
        n_chunks = -(-len(pool) // n)
        for r in range(rounds):
            order = list(canonical)
            if r:
                import random

                random.Random(r).shuffle(order)
            chunks = [order[c::n_chunks] for c in range(n_chunks)]   # sizes differ by at most one
            for chunk, values in zip(chunks, self._chunk_scores(history, chunks, code, normalise=True),
                                     strict=True):
                for item, value in zip(chunk, values, strict=True):
                    total[item] += (value + float(np.log(len(chunk)))) / rounds
        return [total[item] for item in pool]

    def _title_scores(self, history: list[int], pool: list[int], code: str | None) -> list[float]:
        """Each candidate's ``log p(title + EOS | prompt)`` (:mod:`ulmrec_align.ranking.scorer`)."""
        tok = self.ranker.tokenizer
        rendered = self._prompts.render(next_item_templates("title")[0], user_code=code, history=history)
        prompt = encode_prompt(tok, rendered.text, rendered.spans, index_tokens=self._prompts.index_tokens)
        texts = [self._prompts.title(item) for item in pool]
        values = title_log_likelihoods(self.ranker.model, tok, [prompt], [texts], batch_size=self.batch_size)
        if not self.calibrate:
            return values[0]
        missing = [t for t in texts if t not in self._title_prior]
        if missing:
            self._title_prior.update(title_priors(self.ranker.model, tok, missing,
                                                  batch_size=self.batch_size))
        return without_prior(values, [texts], self._title_prior)[0]

    def _relevance_scores(self, history: list[int], pool: list[int], code: str | None) -> list[float]:
        """Each candidate's relevance log-odds after the user's prompt (``ranking.scorer``)."""
        tok = self.ranker.tokenizer
        rendered = self._prompts.render(prompt_instructions(self._prompts.config)[0], user_code=code,
                                        history=history)
        prompt = encode_prompt(tok, rendered.text, rendered.spans, index_tokens=self._prompts.index_tokens)
        continuations = candidate_ids(tok, [self._prompts.title(item) for item in pool], "relevance")
        yes_id, no_id = relevance_token_ids(tok)
        return relevance_scores(self.ranker.model, [prompt], [continuations], yes_id=yes_id, no_id=no_id,
                                pad_id=int(tok.pad_token_id or 0), batch_size=self.batch_size)[0]

    def _chunk_scores(self, history: list[int], chunks: list[list[int]], code: str | None, *,
                      normalise: bool) -> list[list[float]]:
        """Per chunk, each candidate's score: its (calibrated) letter score, merged over the letter orders;
        ``normalise``: log-probabilities over the chunk even for one order."""
        n = self.ranker.prompt.n_candidates
        encoded, shown = [], []
        for chunk in chunks:
            orders = letter_orders(len(chunk), self.permutations)
            shown.append(orders)
            for order in orders:
                rendered = self._prompts.render(TEMPLATES["next_item"][0], user_code=code, history=history,
                                                candidates=[chunk[i] for i in order])
                encoded.append(encode_prompt(self.ranker.tokenizer, rendered.text, rendered.spans,
                                             index_tokens=self._prompts.index_tokens))
        letters = letter_token_ids(self.ranker.tokenizer, n)
        pad_id = int(self.ranker.tokenizer.pad_token_id or 0)
        logits = last_logits(self.ranker.model, encoded, pad_id=pad_id, batch_size=self.batch_size,
                             columns=letters)
        out: list[list[float]] = []
        row = 0
        prior = self.ranker.letter_prior if self.calibrate else None
        for chunk, orders in zip(chunks, shown, strict=True):
            values = [calibrate_letters(logits[row + k, : len(chunk)].astype(np.float64).tolist(), prior)
                      for k in range(len(orders))]
            row += len(orders)
            if len(orders) == 1 and not normalise:
                out.append(values[0])      # one prompt: the (calibrated) letter scores themselves
            else:
                out.append(merge_letter_orders(values, orders, log_softmax=True))
        return out
